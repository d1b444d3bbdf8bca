package lab

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Progress returns where the examples draw their progress bars: standard
// error when both standard output and standard error are terminals and
// off is false, else nil (no bars), so that a run piped to a file or
// another program logs only its results.
func Progress(off bool) io.Writer {
	if off || !term.IsTerminal(int(os.Stdout.Fd())) || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return os.Stderr
}

// progress returns a callback of running totals (cache.Precompute's)
// that advances b.
func (b Bar) progress() func(done int64) {
	var last int64
	return func(done int64) {
		b.Add(int(done - last))
		last = done
	}
}

// Bar is a progress bar; the zero Bar shows nothing.
type Bar struct{ b *progressbar.ProgressBar }

// NewBar returns a bar of total units written to w (nil: no bar).
func NewBar(w io.Writer, total int, desc string) Bar {
	if w == nil {
		return Bar{}
	}
	return Bar{progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-28s", desc)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)}
}

// Add advances the bar.
func (b Bar) Add(n int) {
	if b.b != nil {
		_ = b.b.Add(n)
	}
}

// Finish fills the bar and ends its line.
func (b Bar) Finish() {
	if b.b != nil {
		_ = b.b.Finish()
	}
}

// Series is one line of a plot.
type Series struct {
	Name string
	X, Y []float64
}

// Steps returns the points (i+1, y[i]).
func Steps(name string, y []float64) Series {
	s := Series{Name: name, Y: y}
	for i := range y {
		s.X = append(s.X, float64(i+1))
	}
	return s
}

// Smooth returns the running mean of y over windows of w points, to
// show a noisy per-step loss.
func Smooth(y []float64, w int) []float64 {
	out := make([]float64, len(y))
	var s float64
	for i, v := range y {
		s += v
		if i >= w {
			s -= y[i-w]
		}
		out[i] = s / float64(min(i+1, w))
	}
	return out
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {255, 127, 14, 255}, {44, 160, 44, 255}, {214, 39, 40, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255},
}

// Plot draws series as lines into a new plot.
func Plot(title, xlabel, ylabel string, series ...Series) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = legendCorner(series)
	n := 0
	for _, s := range series {
		if len(s.X) > 0 && s.Name != "" {
			n++
		}
	}
	if y0, y1, ok := yRange(series); ok && n > 0 {
		// Room for the legend: grow the axis past the data by the share
		// of the plot the legend's rows take (about 0.2 in each in a
		// 3 in tall data area), on the side it sits, so it covers no line.
		f := min(0.6, (0.2*float64(n)+0.1)/3)
		pad := (y1 - y0) * f / (1 - f)
		if y1 == y0 {
			pad = 1
		}
		if p.Legend.Top {
			p.Y.Min, p.Y.Max = y0, y1+pad
		} else {
			p.Y.Min, p.Y.Max = y0-pad, y1
		}
	}
	for i, s := range series {
		if len(s.X) == 0 {
			continue
		}
		xy := make(plotter.XYs, len(s.X))
		for j := range s.X {
			xy[j].X, xy[j].Y = s.X[j], s.Y[j]
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return nil, fmt.Errorf("lab: plot %q, series %q: %w", title, s.Name, err)
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	return p, nil
}

// SavePlots writes plots as one PNG, side by side in a grid of cols columns.
func SavePlots(path string, cols int, plots ...*plot.Plot) error {
	rows := (len(plots) + cols - 1) / cols
	const w, h = 6 * vg.Inch, 4 * vg.Inch
	img := vgimgNew(vg.Length(cols)*w, vg.Length(rows)*h)
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
		for j := range cols {
			if k := i*cols + j; k < len(plots) {
				grid[i][j] = plots[k]
			}
		}
	}
	return drawGrid(path, img, grid)
}

// yRange is the smallest and largest y of series.
func yRange(series []Series) (y0, y1 float64, ok bool) {
	y0, y1 = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, y := range s.Y {
			y0, y1 = min(y0, y), max(y1, y)
		}
	}
	return y0, y1, y0 <= y1
}

// legendCorner picks the corner of the plot that the fewest points fall
// in (the outer 45% of each axis), preferring the top right, so that the
// legend hides as little of the lines as it can.
func legendCorner(series []Series) (top, left bool) {
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for i := range s.X {
			x0, x1 = min(x0, s.X[i]), max(x1, s.X[i])
			y0, y1 = min(y0, s.Y[i]), max(y1, s.Y[i])
		}
	}
	best := -1
	for _, c := range [][2]bool{{true, false}, {false, false}, {true, true}, {false, true}} {
		n := 0
		for _, s := range series {
			for i := range s.X {
				fx, fy := (s.X[i]-x0)/(x1-x0+1e-300), (s.Y[i]-y0)/(y1-y0+1e-300)
				inX := (c[1] && fx < 0.45) || (!c[1] && fx > 0.55)
				inY := (c[0] && fy > 0.55) || (!c[0] && fy < 0.45)
				if inX && inY {
					n++
				}
			}
		}
		if best < 0 || n < best {
			best, top, left = n, c[0], c[1]
		}
	}
	return top, left
}

// Table is a results table: a title, column heads (each naming its unit),
// rows, and a note under it saying how to read it (its lines become
// paragraphs).
type Table struct {
	Title string
	Head  []string
	Rows  [][]string
	Note  string
}

// Print writes t as aligned text.
func (t Table) Print(w io.Writer) error {
	fmt.Fprintf(w, "%s\n", t.Title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\n", strings.Join(t.Head, "\t"))
	for _, r := range t.Rows {
		fmt.Fprintf(tw, "  %s\n", strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if t.Note != "" {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(t.Note, "\n", "\n  "))
	}
	_, err := fmt.Fprintln(w)
	return err
}

// Markdown returns t as a Markdown table under a bold title.
func (t Table) Markdown() string {
	var b strings.Builder
	cell := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
	fmt.Fprintf(&b, "**%s**\n\n|", t.Title)
	for _, h := range t.Head {
		fmt.Fprintf(&b, " %s |", cell(h))
	}
	b.WriteString("\n|")
	for range t.Head {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("|")
		for _, c := range r {
			fmt.Fprintf(&b, " %s |", cell(c))
		}
		b.WriteString("\n")
	}
	if t.Note != "" {
		fmt.Fprintf(&b, "\n%s\n", strings.ReplaceAll(t.Note, "\n", "\n\n"))
	}
	b.WriteString("\n")
	return b.String()
}
