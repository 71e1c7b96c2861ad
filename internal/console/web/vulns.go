package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/detect/vuln"
)

// vulnSeverities are the minimum-severity choices of the vulnerability filters.
var vulnSeverities = []string{"critical", "high", "medium", "low"}

type vulnList struct {
	Emergencies []api.EmergencyView
	Items       []store.AdvisoryExposure
	Total       int
	Query       url.Values
	Severities  []string
	Host        *store.Host // the host filter, when set
	First, Last int
	Prev, Next  string
	Problem     string
}

// vulns is the fleet view: the curated emergencies, then every advisory with its exposure.
func (s *Server) vulns(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	d := vulnList{Query: q, Severities: vulnSeverities}
	f := store.VulnFilter{Limit: pageSize, Offset: offset(q), Fixable: q.Get("fixable") == "true", Emergency: q.Get("emergency") == "true"}
	if v := q.Get("severity"); v != "" {
		if f.MinSeverity = vuln.SeverityRank(v); f.MinSeverity == 0 {
			d.Problem = "Unknown severity " + strconv.Quote(v) + "."
		}
	}
	if id := q.Get("host"); id != "" {
		h, err := s.store.HostByID(ctx, id, s.onlineSince())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		d.Host, f.HostID = &h, id
	}
	var err error
	if d.Emergencies, err = s.api.Emergencies(ctx); err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if d.Problem != "" {
		status = http.StatusBadRequest
	} else {
		if d.Items, d.Total, err = s.store.VulnExposure(ctx, f); err != nil {
			s.fail(w, r, err)
			return
		}
		d.First, d.Last, d.Prev, d.Next = pager("/vulns", q, f.Offset, len(d.Items), d.Total)
	}
	s.render(w, r, status, "vulns", view{Title: "Vulnerabilities", Nav: "vulns", Data: d})
}

type vulnPage struct {
	ID          string
	Advisory    vuln.Advisory
	Known       bool // the loaded data holds the advisory (else it is described from the matches)
	Hosts       []store.HostVuln
	Total       int
	First, Last int
	Prev, Next  string
	Choices     []hostChoice // hosts the accept form can name
	Acceptances []acceptanceRow
}

type hostChoice struct{ ID, Name string }

type acceptanceRow struct {
	store.Acceptance
	Hostname string
}

// vuln shows one advisory and every host it affects, with the accept-risk form for analysts.
func (s *Server) vuln(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("advisory")
	all, _, err := s.store.HostVulns(ctx, store.VulnFilter{Advisory: id})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := vulnPage{ID: id, Total: len(all)}
	if adv := s.api.Advisory(id); adv != nil {
		d.Advisory, d.Known = *adv, true
	} else if len(all) > 0 {
		v := all[0]
		d.Advisory = vuln.Advisory{ID: id, Aliases: v.Aliases, Summary: v.Summary, Severity: v.Severity, Score: v.Score}
	} else {
		s.denied(w, r, http.StatusNotFound, "advisory "+id+": not found")
		return
	}
	names := map[string]string{}
	for _, v := range all {
		if _, ok := names[v.HostID]; !ok {
			names[v.HostID] = v.Hostname
			d.Choices = append(d.Choices, hostChoice{v.HostID, v.Hostname})
		}
	}
	off := min(offset(r.URL.Query()), len(all))
	d.Hosts = all[off:min(off+pageSize, len(all))]
	d.First, d.Last, d.Prev, d.Next = pager("/vulns/"+url.PathEscape(id), r.URL.Query(), off, len(d.Hosts), d.Total)
	acc, err := s.store.Acceptances(ctx, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, a := range acc {
		if a.Advisory != id {
			continue
		}
		row := acceptanceRow{Acceptance: a, Hostname: names[a.HostID]}
		if a.HostID != "" && row.Hostname == "" {
			if h, err := s.store.HostByID(ctx, a.HostID, time.Time{}); err == nil {
				row.Hostname = h.Hostname
			}
		}
		d.Acceptances = append(d.Acceptances, row)
	}
	s.render(w, r, http.StatusOK, "vuln", view{Title: id, Nav: "vulns", Data: d})
}

// acceptVuln accepts the advisory's risk on one host or all hosts, through the API's action.
func (s *Server) acceptVuln(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("advisory")
	f := r.PostForm
	comment := strings.TrimSpace(f.Get("comment"))
	if comment == "" {
		s.denied(w, r, http.StatusBadRequest, "Say why the risk is accepted: the comment is required.")
		return
	}
	req := api.AcceptRequest{Advisory: id, Until: strings.TrimSpace(f.Get("until")), Comment: comment}
	// A bare date means the start of that day, UTC.
	if t, err := time.Parse(time.DateOnly, req.Until); err == nil {
		req.Until = t.Format(time.RFC3339)
	}
	if scope := f.Get("scope"); scope == "all" {
		req.All = true
	} else {
		req.Host = scope
	}
	if _, err := s.api.AcceptVuln(r, req); err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/vulns/"+url.PathEscape(id), "accepted")
}

// withdrawAcceptance deletes an acceptance, through the API's action.
func (s *Server) withdrawAcceptance(w http.ResponseWriter, r *http.Request) {
	a, err := s.api.DeleteAcceptance(r, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	done(w, r, "/vulns/"+url.PathEscape(a.Advisory), "withdrawn")
}

// hostVulns is the vulnerability section of the host page.
type hostVulns struct {
	Inventory      *store.HostInventory // nil before the agent sent one
	Vulns          []store.HostVuln     // open first, most severe first
	Open, Accepted int
	Shown, More    int
}

// hostVulnLimit is how many vulnerabilities the host page lists.
const hostVulnLimit = 50

func (s *Server) loadHostVulns(r *http.Request, hostID string) (hostVulns, error) {
	ctx := r.Context()
	var d hostVulns
	inv, err := s.store.Inventory(ctx, hostID)
	switch {
	case err == nil:
		d.Inventory = &inv
	case !errors.Is(err, store.ErrNotFound):
		return d, err
	}
	open, nOpen, err := s.store.HostVulns(ctx, store.VulnFilter{HostID: hostID, Status: "open", Limit: hostVulnLimit})
	if err != nil {
		return d, err
	}
	acc, nAcc, err := s.store.HostVulns(ctx, store.VulnFilter{HostID: hostID, Status: "accepted", Limit: max(hostVulnLimit-len(open), 1)})
	if err != nil {
		return d, err
	}
	if len(open) >= hostVulnLimit {
		acc = nil
	}
	d.Vulns, d.Open, d.Accepted = append(open, acc...), nOpen, nAcc
	d.Shown = len(d.Vulns)
	d.More = nOpen + nAcc - d.Shown
	return d, nil
}
