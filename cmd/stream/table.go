package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// table is output for people: a header and rows in aligned columns, text
// to the left and numbers to the right, two spaces apart. It holds every
// row until written, so it suits listings of modest length; dump, which
// can print millions of lines, streams with fixed widths instead.
type table struct {
	cols []column
	rows [][]string
}

type column struct {
	name  string
	right bool // align right, as numbers
}

// newTable returns a table with the given column names. A name ending in
// ">" is a right-aligned column (the ">" is not printed).
func newTable(names ...string) *table {
	t := &table{}
	for _, n := range names {
		name, right := strings.CutSuffix(n, ">")
		t.cols = append(t.cols, column{name: name, right: right})
	}
	return t
}

// add appends a row; missing cells are empty.
func (t *table) add(cells ...string) {
	t.rows = append(t.rows, cells)
}

// write prints the header and the rows, each line starting with indent.
// The last column is not padded, so no line ends in spaces.
func (t *table) write(w io.Writer, indent string) error {
	widths := t.widths()
	for _, r := range t.rows {
		for i := range min(len(r), len(widths)) {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[i]))
		}
	}
	var b strings.Builder
	b.WriteString(indent + t.line(widths, t.header()))
	for _, r := range t.rows {
		b.WriteString(indent + t.line(widths, r))
	}
	_, err := fmt.Fprint(w, b.String())
	return err
}

// widths returns the width of each column's name.
func (t *table) widths() []int {
	widths := make([]int, len(t.cols))
	for i, c := range t.cols {
		widths[i] = utf8.RuneCountInString(c.name)
	}
	return widths
}

func (t *table) header() []string {
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	return names
}

// line formats one row, ending in a newline, with the columns at least
// widths wide. A longer cell pushes the rest of its line to the right.
func (t *table) line(widths []int, cells []string) string {
	var b strings.Builder
	var pending int // spaces owed before the next cell
	for i, c := range t.cols {
		var cell string
		if i < len(cells) {
			cell = cells[i]
		}
		pad := max(widths[i]-utf8.RuneCountInString(cell), 0)
		if i > 0 {
			pending += 2
		}
		if c.right {
			pending += pad
		}
		if cell != "" {
			b.WriteString(strings.Repeat(" ", pending))
			b.WriteString(cell)
			pending = 0
		}
		if !c.right {
			pending += pad
		}
	}
	b.WriteByte('\n')
	return b.String()
}
