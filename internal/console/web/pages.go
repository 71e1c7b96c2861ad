package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/finding"
	"github.com/palisade-cwpp/palisade/internal/task"
)

const pageSize = 50

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	v := view{Title: "Sign in"}
	if r.URL.Query().Get("expired") == "1" {
		v.Notice = notices["expired"]
	}
	s.render(w, r, http.StatusOK, "login", v)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "login", view{Title: "Sign in", Data: "The form could not be read."})
		return
	}
	_, err := s.api.Login(w, r, api.LoginRequest{User: r.PostForm.Get("user"), Password: r.PostForm.Get("password")})
	if err != nil {
		p := s.api.Explain(err)
		s.render(w, r, p.Status, "login", view{Title: "Sign in", Data: p.Msg})
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.api.Logout(w, r); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/login?done=loggedout", http.StatusSeeOther)
}

// severities lists severity names from most to least urgent, for tables and filters.
var severities = []string{"critical", "high", "medium", "low", "info"}

type dashboard struct {
	Hosts      store.HostCount
	BySeverity []count
	ByCategory []count
	Trend      chart
	Top        []store.SourceCount
	Critical   []store.Event
}

type count struct {
	Name string
	N    int
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var d dashboard
	var err error
	if d.Hosts, err = s.store.CountHosts(ctx, s.onlineSince()); err != nil {
		s.fail(w, r, err)
		return
	}
	sev, cats, err := s.store.OpenEvents(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, name := range severities {
		d.BySeverity = append(d.BySeverity, count{name, sev[name]})
	}
	for _, c := range finding.Categories {
		if cats[c] > 0 {
			d.ByCategory = append(d.ByCategory, count{string(c), cats[c]})
		}
	}
	now := s.store.Now()
	since := now.Add(-13 * 24 * time.Hour).Truncate(24 * time.Hour)
	trend, err := s.store.EventTrend(ctx, since, 24*time.Hour)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d.Trend = barChart(trend)
	if d.Top, err = s.store.TopSources(ctx, now.Add(-7*24*time.Hour), 10); err != nil {
		s.fail(w, r, err)
		return
	}
	crit := finding.SeverityCritical
	if d.Critical, _, err = s.store.ListEvents(ctx, store.EventFilter{MinSeverity: &crit, Limit: 10}); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "dashboard", view{Title: "Dashboard", Nav: "dashboard", Data: d})
}

// live is the JSON the refresh script polls: the dashboard's counters, nothing more.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	hc, err := s.store.CountHosts(r.Context(), s.onlineSince())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sev, err := s.store.EventCounts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]int{"hosts-online": hc.Online, "hosts-offline": hc.Offline}
	for _, name := range severities {
		out["open-"+name] = sev[name]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

type hostList struct {
	Hosts        []store.Host
	Total        int
	Query        url.Values
	Groups, OSes []string
	Prev, Next   string
	First, Last  int
}

func (s *Server) hosts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.HostFilter{Search: q.Get("search"), Group: q.Get("group"), OSID: q.Get("os"), OnlineSince: s.onlineSince(), Limit: pageSize}
	switch q.Get("online") {
	case "true", "false":
		on := q.Get("online") == "true"
		f.Online = &on
	}
	f.Offset = offset(q)
	hosts, total, err := s.store.ListHosts(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := hostList{Hosts: hosts, Total: total, Query: q}
	if d.Groups, err = s.store.HostGroups(r.Context()); err == nil {
		d.OSes, err = s.store.HostOSes(r.Context())
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d.First, d.Last, d.Prev, d.Next = pager("/hosts", q, f.Offset, len(hosts), total)
	s.render(w, r, http.StatusOK, "hosts", view{Title: "Hosts", Nav: "hosts", Data: d})
}

type packageList struct {
	Host        store.Host
	Packages    []finding.Package
	Total       int
	Query       url.Values
	First, Last int
	Prev, Next  string
}

// hostPackages lists the software a host's agent reported: the host's package assets.
func (s *Server) hostPackages(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h, err := s.store.HostByID(ctx, r.PathValue("id"), s.onlineSince())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	f := store.PackageFilter{Name: strings.TrimSpace(q.Get("name")), Ecosystem: q.Get("ecosystem"), Limit: pageSize, Offset: offset(q)}
	pkgs, total, err := s.store.HostPackages(ctx, h.ID, f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := packageList{Host: h, Packages: pkgs, Total: total, Query: q}
	d.First, d.Last, d.Prev, d.Next = pager("/hosts/"+h.ID+"/packages", q, f.Offset, len(pkgs), total)
	s.render(w, r, http.StatusOK, "packages", view{Title: h.Hostname + ": packages", Nav: "hosts", Data: d})
}

// offset reads the page offset of a list; bad values mean the first page.
func offset(q url.Values) int {
	n, err := strconv.Atoi(q.Get("offset"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// pager returns the shown range and the links to the previous and next pages, keeping filters.
func pager(path string, q url.Values, off, n, total int) (first, last int, prev, next string) {
	link := func(o int) string {
		c := url.Values{}
		for k, v := range q {
			c[k] = v
		}
		c.Set("offset", strconv.Itoa(o))
		return path + "?" + c.Encode()
	}
	if off > 0 {
		prev = link(max(0, off-pageSize))
	}
	if off+n < total {
		next = link(off + pageSize)
	}
	if n == 0 {
		return 0, 0, prev, next
	}
	return off + 1, off + n, prev, next
}

type hostPage struct {
	Host   store.Host
	Events []store.Event
	Open   int
	Tasks  []store.HostTask
	Blocks []store.ActiveBlock
	Vulns  hostVulns
}

func (s *Server) host(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	h, err := s.store.HostByID(ctx, r.PathValue("id"), s.onlineSince())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := hostPage{Host: h}
	if d.Events, d.Open, err = s.store.ListEvents(ctx, store.EventFilter{HostID: h.ID, Status: store.StatusOpen, Limit: 20}); err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Tasks, err = s.store.TasksForHost(ctx, h.ID, 20); err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Blocks, _, err = s.store.ListBlocks(ctx, store.BlockFilter{HostID: h.ID, Limit: 100}); err != nil {
		s.fail(w, r, err)
		return
	}
	if d.Vulns, err = s.loadHostVulns(r, h.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "host", view{Title: h.Hostname, Nav: "hosts", Data: d})
}

type eventList struct {
	Events      []store.Event
	Total       int
	Query       url.Values
	Categories  []finding.Category
	Severities  []string
	Statuses    []string
	First, Last int
	Prev, Next  string
	Problem     string
}

// sinceChoices are the time filters of the events list.
var sinceChoices = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := eventList{Query: q, Categories: finding.Categories, Severities: severities,
		Statuses: []string{store.StatusOpen, store.StatusHandled, store.StatusIgnored}}
	f := store.EventFilter{HostID: q.Get("host"), Limit: pageSize, Offset: offset(q)}
	if c := q.Get("category"); c != "" {
		if !finding.Category(c).Valid() {
			d.Problem = "Unknown category " + strconv.Quote(c) + "."
		}
		f.Category = c
	}
	if st := q.Get("status"); st != "" {
		if !store.ValidStatus(st) {
			d.Problem = "Unknown status " + strconv.Quote(st) + "."
		}
		f.Status = st
	}
	if v := q.Get("severity"); v != "" {
		sev, err := finding.ParseSeverity(v)
		if err != nil {
			d.Problem = "Unknown severity " + strconv.Quote(v) + "."
		}
		f.MinSeverity = &sev
	}
	if v := q.Get("since"); v != "" {
		dur, ok := sinceChoices[v]
		if !ok {
			d.Problem = "Unknown time range " + strconv.Quote(v) + "."
		}
		f.Since = s.store.Now().Add(-dur)
	}
	status := http.StatusOK
	if d.Problem != "" {
		status = http.StatusBadRequest
	} else {
		var err error
		if d.Events, d.Total, err = s.store.ListEvents(r.Context(), f); err != nil {
			s.fail(w, r, err)
			return
		}
		d.First, d.Last, d.Prev, d.Next = pager("/events", q, f.Offset, len(d.Events), d.Total)
	}
	s.render(w, r, status, "events", view{Title: "Events", Nav: "events", Data: d})
}

type eventPage struct {
	Event         store.Event
	CanAllowlist  bool
	CanQuarantine bool
}

func (s *Server) event(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.EventByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := eventPage{Event: e,
		CanAllowlist: slices.Contains([]finding.Category{finding.CategoryMalware, finding.CategoryLogin, finding.CategoryBruteForce}, e.Category),
		CanQuarantine: e.Evidence.Path != "" && e.Evidence.Hashes["sha256"] != "" &&
			(e.Category == finding.CategoryMalware || e.Category == finding.CategoryWebshell)}
	s.render(w, r, http.StatusOK, "event", view{Title: e.Title, Nav: "events", Data: d})
}

func (s *Server) eventStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	req := api.HandleRequest{Status: r.PostForm.Get("status"), Comment: r.PostForm.Get("comment")}
	if _, err := s.api.HandleEvent(r, id, req); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/events/"+url.PathEscape(id), req.Status)
}

func (s *Server) eventAllowlist(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.api.AllowlistEvent(r, id, api.AllowlistRequest{Comment: r.PostForm.Get("comment"), Policy: r.PostForm.Get("policy")}); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/events/"+url.PathEscape(id), "allowlisted")
}

// eventBlock blocks the event's source address on the event's host, or on every host.
func (s *Server) eventBlock(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.EventByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if e.Evidence.SourceIP == "" {
		s.denied(w, r, http.StatusBadRequest, "This event names no source address to block.")
		return
	}
	req := api.BlockRequest{Prefix: e.Evidence.SourceIP, TTL: r.PostForm.Get("ttl"), Reason: "event " + e.ID + ": " + e.Title}
	if r.PostForm.Get("scope") == "all" {
		req.All = true
	} else {
		req.Hosts = []string{e.HostID}
	}
	t, err := s.api.BlockTask(r, task.BlockIP, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/tasks/"+url.PathEscape(t.ID), "block")
}

// eventQuarantine isolates the event's file on its host; the agent checks the SHA-256 first.
func (s *Server) eventQuarantine(w http.ResponseWriter, r *http.Request) {
	e, err := s.store.EventByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	params, _ := json.Marshal(task.QuarantineParams{Path: e.Evidence.Path, SHA256: e.Evidence.Hashes["sha256"], Reason: "event " + e.ID})
	t, err := s.api.StartTask(r, api.TaskRequest{Type: task.Quarantine, Params: params, Hosts: []string{e.HostID}})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/tasks/"+url.PathEscape(t.ID), "quarantine")
}

type taskList struct {
	Tasks  []store.Task
	Types  []string
	Hosts  []store.Host
	Groups []string
}

func (s *Server) tasks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ts, err := s.store.ListTasks(ctx, pageSize, offset(r.URL.Query()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := taskList{Tasks: ts, Types: task.Types}
	if d.Hosts, _, err = s.store.ListHosts(ctx, store.HostFilter{OnlineSince: s.onlineSince(), Limit: 200}); err == nil {
		d.Groups, err = s.store.HostGroups(ctx)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "tasks", view{Title: "Tasks", Nav: "tasks", Data: d})
}

// startTask starts a task from the form: a scan is described by its fields, other types by
// a JSON parameters field; targets are the checked hosts, a group, or all hosts.
func (s *Server) startTask(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	req := api.TaskRequest{Type: f.Get("type"), Hosts: f["host"], TTL: f.Get("ttl")}
	switch f.Get("target") {
	case "group":
		req.Hosts, req.Group = nil, f.Get("group")
	case "all":
		req.Hosts, req.All = nil, true
	}
	if req.Type == task.Scan {
		p := task.ScanParams{Mode: f.Get("mode")}
		for line := range strings.SplitSeq(f.Get("paths"), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				p.Paths = append(p.Paths, line)
			}
		}
		req.Params, _ = json.Marshal(p)
	} else if v := strings.TrimSpace(f.Get("params")); v != "" {
		req.Params = json.RawMessage(v)
	}
	t, err := s.api.StartTask(r, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/tasks/"+url.PathEscape(t.ID), "task")
}

type taskPage struct {
	Task     store.Task
	Names    map[string]string
	Finished bool
}

func (s *Server) task(w http.ResponseWriter, r *http.Request) {
	t, err := s.store.TaskByID(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := taskPage{Task: t, Names: map[string]string{}, Finished: true}
	for _, th := range t.Hosts {
		if h, err := s.store.HostByID(r.Context(), th.HostID, time.Time{}); err == nil {
			d.Names[th.HostID] = h.Hostname
		}
		if !store.FinalTaskState(th.State) {
			d.Finished = false
		}
	}
	s.render(w, r, http.StatusOK, "task", view{Title: "Task " + t.ID, Nav: "tasks", Data: d})
}

type onboardingPage struct {
	Tokens      []store.EnrollToken
	New         *api.EnrollTokenResponse
	OneLiner    string
	Manual      string
	AgentServed bool
	CAPin       string
	KeyPin      string
}

func (s *Server) onboarding(w http.ResponseWriter, r *http.Request) {
	s.renderOnboarding(w, r, nil)
}

func (s *Server) renderOnboarding(w http.ResponseWriter, r *http.Request, tok *api.EnrollTokenResponse) {
	ts, err := s.store.ListEnrollTokens(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := onboardingPage{Tokens: ts, New: tok, AgentServed: s.agent.available(), CAPin: s.cfg.CAPin, KeyPin: s.cfg.ServerKeyPin}
	if tok != nil {
		d.OneLiner = s.oneLiner(r.Host, tok.Token)
		d.Manual = "palisade-agent enroll --server " + s.agentAddr(r.Host) + " --token " + tok.Token + " --ca-pin " + s.cfg.CAPin
	}
	s.render(w, r, http.StatusOK, "onboarding", view{Title: "Add a server", Nav: "onboarding", Data: d})
}

func (s *Server) createEnrollToken(w http.ResponseWriter, r *http.Request) {
	tok, err := s.api.CreateEnrollToken(r, api.EnrollTokenRequest{Group: r.PostForm.Get("group"), TTL: r.PostForm.Get("ttl")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Shown once, on this response; never in a URL or a log.
	s.renderOnboarding(w, r, &tok)
}

type settingsPage struct {
	Tokens   []store.APIToken
	NewToken string
	Users    []store.User
	Groups   []groupRow
	Scope    string // the policy scope shown: "fleet" or "group:NAME"
	Scopes   []string
	Policy   api.PolicyView
	Own      bool // the scope has a saved policy (false: a group inherits the fleet's)
	Body     string
	Webhooks []store.Webhook
	Secret   string
	Roles    []string
	Cats     []finding.Category
	Sevs     []string
}

func (s *Server) settings(w http.ResponseWriter, r *http.Request) { s.renderSettings(w, r, "", "") }

func (s *Server) renderSettings(w http.ResponseWriter, r *http.Request, newToken, secret string) {
	ctx := r.Context()
	u, _ := api.Caller(ctx)
	d := settingsPage{NewToken: newToken, Secret: secret, Roles: []string{store.RoleViewer, store.RoleAnalyst, store.RoleAdmin},
		Cats: finding.Categories, Sevs: severities}
	var err error
	if d.Tokens, err = s.api.APITokens(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.loadGroups(r, &d); err != nil {
		s.fail(w, r, err)
		return
	}
	d.Scope, d.Own = store.FleetScope, true
	if sc := r.URL.Query().Get("scope"); sc != "" && slices.Contains(d.Scopes, sc) {
		d.Scope = sc
	}
	d.Policy, err = s.api.PolicyView(r, d.Scope)
	if errors.Is(err, store.ErrNotFound) {
		// A group without its own policy follows the fleet's; saving creates the group's own.
		d.Own = false
		d.Policy, err = s.api.PolicyView(r, store.FleetScope)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var pretty []byte
	if pretty, err = json.MarshalIndent(d.Policy.Policy, "", "  "); err == nil {
		d.Body = string(pretty)
	}
	if api.Allowed(u.Role, store.RoleAdmin) {
		if d.Users, err = s.store.ListUsers(ctx); err == nil {
			d.Webhooks, err = s.store.Webhooks(ctx)
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, "settings", view{Title: "Settings", Nav: "settings", Data: d})
}

// groupRow is a host group on the settings page, with the policy that applies to it.
type groupRow struct {
	store.GroupCount
	Scope     string
	OwnPolicy string // version of the group's own policy, empty when it follows the fleet's
}

func (s *Server) loadGroups(r *http.Request, d *settingsPage) error {
	gs, err := s.store.CountGroups(r.Context(), s.onlineSince())
	if err != nil {
		return err
	}
	ps, err := s.store.Policies(r.Context())
	if err != nil {
		return err
	}
	own := map[string]string{}
	for _, p := range ps {
		own[p.Scope] = p.Version
	}
	d.Scopes = []string{store.FleetScope}
	for _, g := range gs {
		sc := store.GroupScope(g.Name)
		d.Groups = append(d.Groups, groupRow{GroupCount: g, Scope: sc, OwnPolicy: own[sc]})
		d.Scopes = append(d.Scopes, sc)
	}
	return nil
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	if _, err := s.api.CreateUser(r, api.UserRequest{Name: f.Get("name"), Role: f.Get("role"), Password: f.Get("password")}); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/settings", "user")
}

func (s *Server) createAPIToken(w http.ResponseWriter, r *http.Request) {
	t, err := s.api.CreateAPIToken(r, api.APITokenRequest{Name: r.PostForm.Get("name"), TTL: r.PostForm.Get("ttl")})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderSettings(w, r, t.Token, "")
}

func (s *Server) savePolicy(w http.ResponseWriter, r *http.Request) {
	scope := r.PostForm.Get("scope")
	if scope == "" {
		scope = store.FleetScope
	}
	if _, err := s.api.PutPolicy(r, scope, []byte(r.PostForm.Get("policy"))); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/settings?"+url.Values{"scope": {scope}, "done": {"policy"}}.Encode()+"#pol-h", http.StatusSeeOther)
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	req := api.WebhookRequest{Name: f.Get("name"), URL: f.Get("url"), MinSeverity: f.Get("min_severity"), Categories: f["category"]}
	wh, err := s.api.CreateWebhook(r, req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.renderSettings(w, r, "", wh.Secret)
}

func (s *Server) enableWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.api.SetWebhookEnabled(r, r.PathValue("id"), r.PostForm.Get("enabled") == "true"); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/settings", "switched")
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.api.DeleteWebhook(r, r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/settings", "deleted")
}

type auditPage struct {
	Entries []store.AuditEntry
	Query   url.Values
	Prev    string
	Next    string
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	off := offset(q)
	es, err := s.store.ListAudit(r.Context(), q.Get("actor"), q.Get("action"), pageSize+1, off)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := auditPage{Entries: es, Query: q}
	total := off + len(es)
	if len(es) > pageSize {
		d.Entries = es[:pageSize]
	}
	_, _, d.Prev, d.Next = pager("/audit", q, off, len(d.Entries), total)
	s.render(w, r, http.StatusOK, "audit", view{Title: "Audit log", Nav: "audit", Data: d})
}
