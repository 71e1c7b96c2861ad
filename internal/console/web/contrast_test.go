package web

import (
	"math"
	"regexp"
	"strconv"
	"testing"
)

// luminance is the WCAG 2 relative luminance of a #rrggbb colour.
func luminance(hex string) float64 {
	ch := func(i int) float64 {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.03928 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(0) + 0.7152*ch(1) + 0.0722*ch(2)
}

func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// Every text colour of app.css on every background it is used on meets WCAG AA (4.5:1).
func TestPaletteContrast(t *testing.T) {
	css, err := files.ReadFile("static/app.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z-]+):\s*(#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	const th, notice, errorBg = "#eef1f4", "#e6f4ea", "#fdecea"
	pairs := []struct{ fg, bg string }{
		{"ink", "paper"}, {"ink", "page"}, {"ink", th}, {"ink", notice}, {"muted", "paper"}, {"muted", "page"}, {"muted", th},
		{"link", "paper"}, {"link", "page"}, {"brand-ink", "brand"}, {"critical", "paper"}, {"high", "paper"},
		{"medium", "paper"}, {"low", "paper"}, {"info", "paper"}, {"ok", "paper"}, {"error", errorBg}, {"link", notice},
	}
	color := func(name string) string {
		if name[0] == '#' {
			return name
		}
		c, ok := vars[name]
		if !ok {
			t.Fatalf("app.css defines no --%s", name)
		}
		return c
	}
	for _, p := range pairs {
		if r := contrast(color(p.fg), color(p.bg)); r < 4.5 {
			t.Errorf("%s on %s: contrast %.2f:1, want at least 4.5:1", p.fg, p.bg, r)
		} else {
			t.Logf("%s on %s: %.2f:1", p.fg, p.bg, r)
		}
	}
}
