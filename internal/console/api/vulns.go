package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// vulnFilter reads the filters the vulnerability lists share: severity (minimum), fixable,
// emergency, status.
func vulnFilter(w http.ResponseWriter, r *http.Request) (store.VulnFilter, bool) {
	limit, offset, ok := paging(w, r)
	if !ok {
		return store.VulnFilter{}, false
	}
	q := r.URL.Query()
	f := store.VulnFilter{Limit: limit, Offset: offset, Status: q.Get("status")}
	if v := q.Get("severity"); v != "" {
		if f.MinSeverity = vuln.SeverityRank(strings.ToLower(v)); f.MinSeverity == 0 {
			writeError(w, http.StatusBadRequest, "query parameter severity: want low, medium, high or critical (the minimum)")
			return f, false
		}
	}
	for _, b := range []struct {
		name string
		v    *bool
	}{{"fixable", &f.Fixable}, {"emergency", &f.Emergency}} {
		switch q.Get(b.name) {
		case "", "false":
		case "true":
			*b.v = true
		default:
			writeError(w, http.StatusBadRequest, "query parameter "+b.name+": want true or false")
			return f, false
		}
	}
	switch f.Status {
	case "", "open", "accepted":
	default:
		writeError(w, http.StatusBadRequest, "query parameter status: want open or accepted")
		return f, false
	}
	return f, true
}

// listVulns is the fleet view: advisories with exposure counts.
func (s *Server) listVulns(w http.ResponseWriter, r *http.Request) {
	f, ok := vulnFilter(w, r)
	if !ok {
		return
	}
	f.HostID = r.URL.Query().Get("host")
	items, total, err := s.store.VulnExposure(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.AdvisoryExposure]{Items: nonNil(items), Total: total, Limit: f.Limit, Offset: f.Offset})
}

// AdvisoryView is one advisory and the hosts it affects.
type AdvisoryView struct {
	Advisory *vuln.Advisory   `json:"advisory,omitempty"` // nil when the data no longer holds it
	Hosts    []store.HostVuln `json:"hosts"`
	Total    int              `json:"total"`
}

func (s *Server) getVuln(w http.ResponseWriter, r *http.Request) {
	f, ok := vulnFilter(w, r)
	if !ok {
		return
	}
	f.Advisory = r.PathValue("advisory")
	vs, total, err := s.store.HostVulns(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	adv := s.Advisory(f.Advisory)
	if adv == nil && total == 0 {
		writeError(w, http.StatusNotFound, "advisory "+f.Advisory+": not found")
		return
	}
	writeJSON(w, http.StatusOK, AdvisoryView{Advisory: adv, Hosts: nonNil(vs), Total: total})
}

// EmergencyView is one emergency vulnerability across the fleet.
type EmergencyView struct {
	vuln.Emergency
	// Hosts exposed (not accepted) and accepted; Affected lists every affected host.
	Hosts         int              `json:"hosts"`
	AcceptedHosts int              `json:"accepted_hosts"`
	Advisories    []string         `json:"advisories"`
	Affected      []store.HostVuln `json:"affected"`
}

// emergencyVulns is the dedicated view of the curated high-profile vulnerabilities: every entry
// of the list, exposed or not, so an operator sees "regreSSHion: 0 hosts" as an answer too.
func (s *Server) emergencyVulns(w http.ResponseWriter, r *http.Request) {
	out, err := s.Emergencies(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[EmergencyView]{Items: out, Total: len(out), Limit: len(out)})
}

// Emergencies returns every entry of the curated emergency list with the hosts it affects.
func (s *Server) Emergencies(ctx context.Context) ([]EmergencyView, error) {
	vs, _, err := s.store.HostVulns(ctx, store.VulnFilter{Emergency: true})
	if err != nil {
		return nil, err
	}
	var list []*vuln.Emergency
	if s.cfg.Vulns != nil {
		list = s.cfg.Vulns.Emergencies()
	} else {
		list = vuln.BuiltinEmergency().All()
	}
	out := make([]EmergencyView, 0, len(list))
	for _, e := range list {
		ev := EmergencyView{Emergency: *e, Advisories: []string{}, Affected: []store.HostVuln{}}
		open, accepted := map[string]bool{}, map[string]bool{}
		for _, v := range vs {
			if v.Emergency != e.Name {
				continue
			}
			ev.Affected = append(ev.Affected, v)
			if !slices.Contains(ev.Advisories, v.Advisory) {
				ev.Advisories = append(ev.Advisories, v.Advisory)
			}
			if v.Status == "accepted" {
				accepted[v.HostID] = true
			} else {
				open[v.HostID] = true
			}
		}
		ev.Hosts, ev.AcceptedHosts = len(open), len(accepted)
		out = append(out, ev)
	}
	return out, nil
}

// Advisory returns an advisory from the loaded vulnerability data; nil when the console has no
// data or the data no longer holds it.
func (s *Server) Advisory(id string) *vuln.Advisory {
	if s.cfg.Vulns == nil {
		return nil
	}
	adv, _ := s.cfg.Vulns.Advisory(id)
	return adv
}

func (s *Server) hostVulns(w http.ResponseWriter, r *http.Request) {
	f, ok := vulnFilter(w, r)
	if !ok {
		return
	}
	f.HostID = r.PathValue("id")
	if _, err := s.store.HostByID(r.Context(), f.HostID, s.onlineSince()); err != nil {
		s.storeError(w, err)
		return
	}
	vs, total, err := s.store.HostVulns(r.Context(), f)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.HostVuln]{Items: nonNil(vs), Total: total, Limit: f.Limit, Offset: f.Offset})
}

// PackagesPage is a host's inventory.
type PackagesPage struct {
	Page[finding.Package]
	Inventory *store.HostInventory `json:"inventory,omitempty"` // nil before the agent sent one
}

func (s *Server) hostPackages(w http.ResponseWriter, r *http.Request) {
	limit, offset, ok := paging(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if _, err := s.store.HostByID(r.Context(), id, s.onlineSince()); err != nil {
		s.storeError(w, err)
		return
	}
	q := r.URL.Query()
	pkgs, total, err := s.store.HostPackages(r.Context(), id, store.PackageFilter{Name: q.Get("name"), Ecosystem: q.Get("ecosystem"), Limit: max(limit, 1), Offset: offset})
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := PackagesPage{Page: Page[finding.Package]{Items: nonNil(pkgs), Total: total, Limit: limit, Offset: offset}}
	if inv, err := s.store.Inventory(r.Context(), id); err == nil {
		out.Inventory = &inv
	}
	writeJSON(w, http.StatusOK, out)
}

// AcceptRequest is the body of POST /api/v1/vulns/accept.
type AcceptRequest struct {
	Advisory string `json:"advisory"`
	Host     string `json:"host,omitempty"`
	All      bool   `json:"all,omitempty"`
	// Until is an RFC 3339 time or a duration from now ("720h").
	Until   string `json:"until"`
	Comment string `json:"comment,omitempty"`
}

// maxAcceptance bounds how long a risk may be accepted: a decision must be looked at again.
const maxAcceptance = 366 * 24 * time.Hour

func (s *Server) acceptVuln(w http.ResponseWriter, r *http.Request) {
	var req AcceptRequest
	if !decode(w, r, &req) {
		return
	}
	a, err := s.AcceptVuln(r, req)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, a)
}

// AcceptVuln validates and records an acceptance of an advisory on one host or all hosts for the
// caller, and audits it.
func (s *Server) AcceptVuln(r *http.Request, req AcceptRequest) (store.Acceptance, error) {
	bad := func(format string, a ...any) (store.Acceptance, error) {
		return store.Acceptance{}, problem(http.StatusBadRequest, format, a...)
	}
	now := s.store.Now()
	switch {
	case req.Advisory == "" || len(req.Advisory) > 256:
		return bad("advisory is required")
	case (req.Host == "") == !req.All:
		return bad("give either host or all: true")
	case len(req.Comment) > 2048:
		return bad("comment longer than 2048 bytes")
	}
	var until time.Time
	if d, err := time.ParseDuration(req.Until); err == nil {
		until = now.Add(d)
	} else if t, err := time.Parse(time.RFC3339, req.Until); err == nil {
		until = t.UTC().Truncate(time.Millisecond)
	} else {
		return bad("until: want an RFC 3339 time or a duration like 720h")
	}
	if !until.After(now) || until.Sub(now) > maxAcceptance {
		return bad("until must be in the future and at most 366 days away")
	}
	if req.Host != "" {
		if _, err := s.store.HostByID(r.Context(), req.Host, s.onlineSince()); err != nil {
			return store.Acceptance{}, err
		}
	}
	a, err := s.store.AcceptVuln(r.Context(), store.Acceptance{ID: "va-" + NewSecret(8), Advisory: req.Advisory, HostID: req.Host, Until: until,
		CreatedBy: principalFrom(r.Context()).user.Name, Comment: req.Comment})
	if err != nil {
		return store.Acceptance{}, err
	}
	target := req.Advisory + " on " + map[bool]string{true: "all hosts", false: req.Host}[req.All]
	s.audit(r, "vuln.accept", target, "until="+until.Format(time.RFC3339)+" comment="+req.Comment)
	return a, nil
}

func (s *Server) listAcceptances(w http.ResponseWriter, r *http.Request) {
	as, err := s.store.Acceptances(r.Context(), r.URL.Query().Get("expired") == "true")
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, Page[store.Acceptance]{Items: nonNil(as), Total: len(as), Limit: len(as)})
}

func (s *Server) deleteAcceptance(w http.ResponseWriter, r *http.Request) {
	if _, err := s.DeleteAcceptance(r, r.PathValue("id")); err != nil {
		s.storeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// DeleteAcceptance withdraws an acceptance and audits it.
func (s *Server) DeleteAcceptance(r *http.Request, id string) (store.Acceptance, error) {
	a, err := s.store.DeleteAcceptance(r.Context(), id)
	if err != nil {
		return a, err
	}
	scope := a.HostID
	if scope == "" {
		scope = "all hosts"
	}
	s.audit(r, "vuln.accept-delete", a.Advisory+" on "+scope, "id="+a.ID)
	return a, nil
}

// importVulnDB takes an OSV archive (zip of OSV JSON records, e.g. osv.dev's all.zip) as the body.
func (s *Server) importVulnDB(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Vulns == nil {
		writeError(w, http.StatusServiceUnavailable, "vulnerability data is not available in this console")
		return
	}
	source := r.URL.Query().Get("source")
	if source == "" {
		source = "upload"
	}
	if len(source) > 256 {
		writeError(w, http.StatusBadRequest, "query parameter source: at most 256 bytes")
		return
	}
	// A full ecosystem archive is hundreds of megabytes: allow the upload the time it needs.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(30 * time.Minute))
	rc.SetWriteDeadline(time.Now().Add(35 * time.Minute))
	res, err := s.cfg.Vulns.Import(r.Context(), r.Body, source, principalFrom(r.Context()).user.Name)
	if err != nil {
		writeError(w, http.StatusBadRequest, "import: "+err.Error())
		return
	}
	s.audit(r, "vulndb.import", res.Name, "source="+source+" sha256="+res.SHA256)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) vulnDBStatus(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Vulns == nil {
		writeError(w, http.StatusServiceUnavailable, "vulnerability data is not available in this console")
		return
	}
	st, err := s.cfg.Vulns.Status(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
