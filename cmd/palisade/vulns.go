package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/palisade-cwpp/palisade/internal/console/api"
	"github.com/palisade-cwpp/palisade/internal/console/store"
	"github.com/palisade-cwpp/palisade/internal/console/vulndb"
	"github.com/palisade-cwpp/palisade/internal/finding"
)

// runVulns is "palisade vulns [flags]" (the list) or "palisade vulns VERB ...".
func runVulns(ctx context.Context, args []string) error {
	verbs := map[string]func(context.Context, []string) error{
		"list":        vulnsList,
		"show":        vulnsShow,
		"emergency":   vulnsEmergency,
		"packages":    vulnsPackages,
		"import":      vulnsImport,
		"status":      vulnsStatus,
		"accept":      vulnsAccept,
		"acceptances": vulnsAcceptances,
		"unaccept":    vulnsUnaccept,
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		return vulnsList(ctx, args)
	}
	return sub(ctx, "vulns", args, verbs)
}

func vulnsList(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vulns", flag.ContinueOnError)
	host := fs.String("host", "", "one host's vulnerabilities, package by package")
	emergency := fs.Bool("emergency", false, "only emergency vulnerabilities")
	severity := fs.String("severity", "", "minimum severity: low, medium, high, critical")
	fixable := fs.Bool("fixable", false, "only those with a fixed version")
	status := fs.String("status", "", "with --host: open or accepted")
	limit := fs.String("limit", "", "page size (default 100)")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"severity": *severity, "status": *status, "limit": *limit} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *emergency {
		q.Set("emergency", "true")
	}
	if *fixable {
		q.Set("fixable", "true")
	}
	if *host != "" {
		p, err := list(ctx, "/api/v1/hosts/"+url.PathEscape(*host)+"/vulns", q, *asJSON,
			"ADVISORY\tSEVERITY\tPACKAGE\tINSTALLED\tFIXED\tSTATUS\tEMERGENCY\tFIX", func(v store.HostVuln) []string {
				return []string{v.Advisory, severityText(v.Severity, v.Score), v.Package, v.Installed, orDash(v.Fixed), v.Status, orDash(v.Emergency), orDash(v.FixCommand)}
			})
		if err == nil && !*asJSON {
			fmt.Fprintf(os.Stderr, "%d of %d vulnerabilities\n", len(p.Items), p.Total)
		}
		return err
	}
	p, err := list(ctx, "/api/v1/vulns", q, *asJSON, "ADVISORY\tSEVERITY\tHOSTS\tACCEPTED\tFIXABLE\tEMERGENCY\tPACKAGES\tALIASES",
		func(e store.AdvisoryExposure) []string {
			return []string{e.Advisory, severityText(e.Severity, e.Score), fmt.Sprint(e.Hosts), fmt.Sprint(e.AcceptedHosts), yesNo(e.Fixable),
				orDash(e.Emergency), strings.Join(e.Packages, ","), orDash(strings.Join(e.Aliases, ","))}
		})
	if err == nil && !*asJSON {
		fmt.Fprintf(os.Stderr, "%d of %d advisories\n", len(p.Items), p.Total)
	}
	return err
}

func severityText(sev string, score float64) string {
	if score > 0 {
		return fmt.Sprintf("%s (%.1f)", sev, score)
	}
	return sev
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func vulnsShow(ctx context.Context, args []string) error {
	return showJSON(ctx, args, "vulns show", "an advisory ID", "/api/v1/vulns/", &api.AdvisoryView{})
}

func vulnsEmergency(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vulns emergency", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	_, err := list(ctx, "/api/v1/vulns/emergency", nil, *asJSON, "NAME\tCVE\tHOSTS\tACCEPTED\tADVISORIES", func(e api.EmergencyView) []string {
		return []string{e.Name, e.ID, fmt.Sprint(e.Hosts), fmt.Sprint(e.AcceptedHosts), orDash(strings.Join(e.Advisories, ","))}
	})
	return err
}

func vulnsPackages(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vulns packages", flag.ContinueOnError)
	name := fs.String("name", "", "substring of the package or source name")
	eco := fs.String("ecosystem", "", "ecosystem prefix, e.g. Debian, PyPI")
	limit := fs.String("limit", "1000", "page size")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, 1, "a host ID")
	if err != nil {
		return err
	}
	q := url.Values{"limit": {*limit}}
	if *name != "" {
		q.Set("name", *name)
	}
	if *eco != "" {
		q.Set("ecosystem", *eco)
	}
	p, err := list(ctx, "/api/v1/hosts/"+url.PathEscape(pos[0])+"/packages", q, *asJSON, "ECOSYSTEM\tNAME\tVERSION\tSOURCE\tLOCATION",
		func(p finding.Package) []string {
			return []string{p.Ecosystem, p.Name, p.Version, orDash(p.SourceName), p.Location}
		})
	if err == nil && !*asJSON {
		fmt.Fprintf(os.Stderr, "%d of %d packages\n", len(p.Items), p.Total)
	}
	return err
}

func vulnsImport(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vulns import", flag.ContinueOnError)
	source := fs.String("source", "", "where the archive came from, for the record (default: the file name)")
	pos, err := parse(fs, args, 1, "an OSV archive (a zip such as osv.dev's all.zip; - for standard input)")
	if err != nil {
		return err
	}
	var r io.Reader = os.Stdin
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
		if *source == "" {
			*source = pos[0]
		}
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	var res vulndb.ImportResult
	if err := c.doRaw(ctx, "POST", "/api/v1/vulndb/import?source="+url.QueryEscape(*source), "application/zip", r, &res); err != nil {
		return err
	}
	if res.Unchanged {
		fmt.Printf("%s: unchanged (same archive as before)\n", res.Name)
		return nil
	}
	var parts []string
	for eco, n := range res.Records {
		parts = append(parts, fmt.Sprintf("%s %d", eco, n))
	}
	fmt.Printf("%s: imported (%s records; %d skipped); %d advisories loaded; hosts are being rematched\n",
		res.Name, strings.Join(parts, ", "), res.Skipped, res.Advisories)
	return nil
}

func vulnsStatus(ctx context.Context, args []string) error {
	if _, err := parse(flag.NewFlagSet("vulns status", flag.ContinueOnError), args, 0, "no arguments"); err != nil {
		return err
	}
	var st vulndb.Status
	if err := call(ctx, "GET", "/api/v1/vulndb", nil, nil, &st); err != nil {
		return err
	}
	return printJSON(st)
}

func vulnsAccept(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vulns accept", flag.ContinueOnError)
	host := fs.String("host", "", "the host the risk is accepted on")
	all := fs.Bool("all", false, "accept on all hosts")
	until := fs.String("until", "", "RFC 3339 time or duration such as 720h (at most 366 days)")
	comment := fs.String("comment", "", "why the risk is acceptable")
	pos, err := parse(fs, args, 1, "an advisory ID")
	if err != nil {
		return err
	}
	if (*host == "") == !*all {
		return usagef("vulns accept: give --host HOST or --all")
	}
	if *until == "" {
		return usagef("vulns accept: --until is required; accepted risks expire")
	}
	var a store.Acceptance
	if err := call(ctx, "POST", "/api/v1/vulns/accept", nil, api.AcceptRequest{Advisory: pos[0], Host: *host, All: *all, Until: *until, Comment: *comment}, &a); err != nil {
		return err
	}
	scope := a.HostID
	if scope == "" {
		scope = "all hosts"
	}
	fmt.Printf("%s accepted on %s until %s (acceptance %s)\n", a.Advisory, scope, ts(a.Until), a.ID)
	return nil
}

func vulnsAcceptances(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("vulns acceptances", flag.ContinueOnError)
	expired := fs.Bool("expired", false, "include expired acceptances")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args, 0, "no arguments"); err != nil {
		return err
	}
	q := url.Values{}
	if *expired {
		q.Set("expired", "true")
	}
	_, err := list(ctx, "/api/v1/vulns/acceptances", q, *asJSON, "ID\tADVISORY\tHOST\tUNTIL\tBY\tCOMMENT", func(a store.Acceptance) []string {
		h := a.HostID
		if h == "" {
			h = "(all)"
		}
		return []string{a.ID, a.Advisory, h, ts(a.Until), a.CreatedBy, orDash(a.Comment)}
	})
	return err
}

func vulnsUnaccept(ctx context.Context, args []string) error {
	pos, err := parse(flag.NewFlagSet("vulns unaccept", flag.ContinueOnError), args, 1, "an acceptance ID")
	if err != nil {
		return err
	}
	if err := call(ctx, "DELETE", "/api/v1/vulns/acceptances/"+url.PathEscape(pos[0]), nil, nil, nil); err != nil {
		return err
	}
	fmt.Printf("acceptance %s withdrawn\n", pos[0])
	return nil
}
