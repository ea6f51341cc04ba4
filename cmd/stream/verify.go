package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

var verifyCommand = &command{
	name:    "verify",
	summary: "check every segment and index of a directory",
	help: `Verify checks every segment and index of the directory without changing
anything (stream.Verify): each batch's length, magic and CRC-32C; offsets
contiguous within and across the segments of a partition; every offset
index entry pointing at the batch it names; time index entries in order.

A clean directory prints one line and exits with status 0. Any problem
exits with status 1 after a report naming, for each, the file, the byte
position in it and what is wrong; damaged indexes are reported too,
though Open rebuilds them. A directory held by a running process fails at
once with an error naming it.`,
}

func init() { verifyCommand.run = runVerify }

// verifyReport is what verify found.
type verifyReport struct {
	Dir        string          `json:"dir"`
	OK         bool            `json:"ok"`
	Topics     int             `json:"topics"`
	Partitions int             `json:"partitions"`
	Segments   int             `json:"segments"`
	LogBytes   int64           `json:"log_bytes"`
	Problems   []verifyProblem `json:"problems"`
}

type verifyProblem struct {
	File     string `json:"file"`
	Position int64  `json:"position"`
	Problem  string `json:"problem"`
}

func runVerify(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var dir string
	var asJSON bool
	fs := verifyCommand.newFlagSet(stderr, &dir)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	if err := checkStreamDir(dir); err != nil {
		return err
	}
	rep := &verifyReport{Dir: dir, Problems: []verifyProblem{}}
	if err := rep.count(); err != nil {
		return err
	}
	problems, err := stream.Verify(dir)
	if err != nil {
		return err
	}
	for _, p := range problems {
		rep.Problems = append(rep.Problems, verifyProblem{File: p.File, Position: p.Position, Problem: p.Err.Error()})
	}
	rep.OK = len(problems) == 0
	if asJSON {
		err = writeJSON(stdout, rep)
	} else {
		err = rep.print(stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("%s: %s found", dir, plural(len(problems), "problem"))
	}
	return nil
}

// count counts what Verify checks: partition directories, the topics
// they belong to, segment files and their bytes.
func (r *verifyReport) count() error {
	parts, err := os.ReadDir(filepath.Join(r.Dir, "topics"))
	if err != nil {
		return err
	}
	topics := map[string]bool{}
	for _, p := range parts {
		if !p.IsDir() {
			continue
		}
		r.Partitions++
		if i := strings.LastIndexByte(p.Name(), '-'); i > 0 {
			topics[p.Name()[:i]] = true
		}
		files, err := os.ReadDir(filepath.Join(r.Dir, "topics", p.Name()))
		if err != nil {
			return err
		}
		for _, f := range files {
			stem, ok := strings.CutSuffix(f.Name(), ".log")
			if _, err := strconv.ParseInt(stem, 10, 64); !ok || err != nil {
				continue
			}
			fi, err := f.Info()
			if err != nil {
				return err
			}
			r.Segments++
			r.LogBytes += fi.Size()
		}
	}
	r.Topics = len(topics)
	return nil
}

func (r *verifyReport) print(w io.Writer) error {
	checked := fmt.Sprintf("%s, %s, %s, %s of record batches", plural(r.Topics, "topic"),
		plural(r.Partitions, "partition"), plural(r.Segments, "segment"), humanize.IBytes(uint64(r.LogBytes)))
	if r.OK {
		_, err := fmt.Fprintf(w, "ok: %s: %s verified, no problems\n", r.Dir, checked)
		return err
	}
	fmt.Fprintf(w, "%s: %s in %s\n\n", r.Dir, plural(len(r.Problems), "problem"), checked)
	t := newTable("file", "position>", "problem")
	for _, p := range r.Problems {
		t.add(p.File, strconv.FormatInt(p.Position, 10), p.Problem)
	}
	return t.write(w, "")
}
