package web

import (
	"github.com/palisade-cwpp/palisade/internal/console/store"
)

// chart is a bar chart laid out on the server; the template draws it as inline SVG, so the
// dashboard needs no script and no chart library.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int
	Total         int
}

type bar struct {
	X, Y, W, H int
	Label      string // the bucket's day, "02 Jan"
	Count      int
}

const (
	chartWidth  = 640
	chartHeight = 160
	chartLabel  = 18 // room under the bars for day labels
)

func barChart(points []store.TrendPoint) chart {
	c := chart{Width: chartWidth, Height: chartHeight + chartLabel}
	for _, p := range points {
		c.Max = max(c.Max, p.Count)
		c.Total += p.Count
	}
	if len(points) == 0 {
		return c
	}
	slot := chartWidth / len(points)
	for i, p := range points {
		h := 0
		if c.Max > 0 {
			h = p.Count * (chartHeight - 4) / c.Max
		}
		if p.Count > 0 && h < 2 {
			h = 2 // a day with events never looks empty
		}
		c.Bars = append(c.Bars, bar{X: i*slot + 2, Y: chartHeight - h, W: slot - 4, H: h,
			Label: p.Start.UTC().Format("02 Jan"), Count: p.Count})
	}
	return c
}
