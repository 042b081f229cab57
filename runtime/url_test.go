package runtime

import (
	"strings"
	"testing"
	"time"

	"github.com/limitgen/limitgen/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func TestRedisURLForms(t *testing.T) {
	for _, tc := range []struct {
		url, want string // want: the client's type, or an error's text
	}{
		{"redis://127.0.0.1:6379/2", "*redis.Client"},
		{"rediss://user:pw@127.0.0.1:6380?dial_timeout=1s", "*redis.Client"},
		{"unix:///run/redis.sock?db=1", "*redis.Client"},
		{"redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002", "*redis.ClusterClient"},
		{"redis://127.0.0.1:7000?addr=127.0.0.1:7000", "*redis.ClusterClient"},
		{"redis://127.0.0.1:26379?master_name=m&addr=127.0.0.1:26380", "*redis.Client"},
		{"redis://127.0.0.1:26379?master_name=", "master_name is empty"},
		{"redis://127.0.0.1:6379?no_such_option=1", "unexpected option"},
		{"redis://127.0.0.1:7000?addr=nonsense", "unable to parse addr"},
		{"http://127.0.0.1", "invalid URL scheme"},
	} {
		client, err := clientFromURL(tc.url)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			got = typeName(client)
			if !NewRedisStore(client).honorsDeadline() {
				t.Errorf("%s: the client does not end calls at their deadline", tc.url)
			}
			client.Close()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.url, got, tc.want)
		}
	}
}

func typeName(c redis.UniversalClient) string {
	switch c.(type) {
	case *redis.Client:
		return "*redis.Client"
	case *redis.ClusterClient:
		return "*redis.ClusterClient"
	}
	return "other"
}

func TestFromEnvSentinel(t *testing.T) {
	master := redistest.StartTCP(t)
	sentinel := redistest.StartSentinel(t, master, "lgmaster")
	t.Setenv("REDIS_URL", "redis://"+sentinel.TCPAddr()+"?master_name=lgmaster")
	var logs logBuffer
	lim, err := FromEnv(WithLogger(logs.logger()))
	if err != nil {
		t.Fatal(err)
	}
	defer lim.Close()
	if !lim.direct {
		t.Error("the Sentinel client does not end calls at their deadline")
	}
	rule := &Rule{Pool: "sentinel", Window: time.Minute, Allowance: 2}
	for i, want := range []bool{true, true, false} {
		if d := lim.Allow(rule, "sam"); d.Allowed != want || d.Source != SourceStore {
			t.Fatalf("call %d through Sentinel: %+v, want allowed=%v by the store", i, d, want)
		}
	}
	// The counter is in the master.
	if n, err := master.Client().DBSize(t.Context()).Result(); err != nil || n != 1 {
		t.Fatalf("the master holds %d keys (%v), want the one counter", n, err)
	}
}
