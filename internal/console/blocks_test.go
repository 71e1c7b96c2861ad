package console_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/task"
)

// TestOperatorBlockRoundTrip blocks and unblocks an address from the API on a real agent whose
// firewall lives in a network namespace of the test's own.
func TestOperatorBlockRoundTrip(t *testing.T) {
	tc := startConsole(t)
	ta := enrollAgent(t, tc)
	ta.fw = nftablesIn(t)
	ta.start()
	host := ta.a.HostID()
	eventually(t, 10*time.Second, "agent online", func() bool { return hostOnline(tc, host) })

	var tk store.Task
	code := tc.call("POST", "/api/v1/blocks", api.BlockRequest{Prefix: "203.0.113.7", TTL: "1h", Reason: "scanner", Hosts: []string{host}}, &tk)
	mustf(t, code == http.StatusCreated, "create block: HTTP %d", code)
	eventually(t, 10*time.Second, "block task done", func() bool {
		tc.call("GET", "/api/v1/tasks/"+tk.ID, nil, &tk)
		return store.FinalTaskState(tk.Hosts[0].State)
	})
	var res task.BlockResult
	mustf(t, tk.Hosts[0].State == store.TaskSucceeded && jsonInto(tk.Hosts[0].Result, &res) == nil && res.Blocked && res.Backend == "nftables",
		"block task: %+v (%s)", tk.Hosts[0], tk.Hosts[0].Result)

	var blocks api.Page[store.ActiveBlock]
	eventually(t, 10*time.Second, "block listed", func() bool {
		tc.call("GET", "/api/v1/blocks?host="+host, nil, &blocks)
		return blocks.Total == 1
	})
	b := blocks.Items[0]
	mustf(t, b.Prefix == "203.0.113.7/32" && b.Source == "operator:admin" && b.Reason == "scanner" &&
		b.ExpiresAt.After(time.Now().Add(50*time.Minute)), "listed block: %+v", b)

	// The console's own address and loopback are refused, and say why.
	tc.call("POST", "/api/v1/blocks", api.BlockRequest{Prefix: "127.0.0.1", Hosts: []string{host}}, nil)
	code = tc.call("POST", "/api/v1/blocks", api.BlockRequest{Prefix: "127.0.0.1", Hosts: []string{host}}, nil)
	mustf(t, code == http.StatusBadRequest, "blocking loopback: HTTP %d, want 400", code)

	code = tc.call("POST", "/api/v1/blocks/remove", api.BlockRequest{Prefix: "203.0.113.7", Hosts: []string{host}}, &tk)
	mustf(t, code == http.StatusCreated, "remove block: HTTP %d", code)
	eventually(t, 10*time.Second, "block removed", func() bool {
		tc.call("GET", "/api/v1/blocks?host="+host, nil, &blocks)
		return blocks.Total == 0
	})
	entries, err := ta.fw.List(t.Context())
	mustf(t, err == nil && len(entries) == 0, "firewall still holds %v (%v)", entries, err)
}
