package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// writeSegments writes a topic of one partition with fillTopic and
// returns its .log files in order.
func writeSegments(t *testing.T, batches, perBatch int) (dir string, logs []string) {
	t.Helper()
	dir = t.TempDir()
	mustRun(t, "create", "-dir", dir, "-segment-bytes", "1KiB", "t")
	fillTopic(t, dir, "t", batches, perBatch)
	logs, err := filepath.Glob(filepath.Join(dir, "topics", "t-0", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("segments: %v, %v", logs, err)
	}
	return dir, logs
}

// segmentBatches lists a segment's batches through the library.
func segmentBatches(t *testing.T, path string) []stream.SegmentBatch {
	t.Helper()
	sf, err := stream.OpenSegmentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	var bs []stream.SegmentBatch
	for b, err := range sf.Batches() {
		if err != nil || b.Err != nil {
			t.Fatal(err, b.Err)
		}
		bs = append(bs, b)
	}
	return bs
}

const dumpHeaderLine = "  position  base offset  last offset   count      size  base timestamp            max timestamp             compression  producer id  epoch    sequence  leader epoch  crc       verdict"

// TestDumpGolden dumps a segment whose every byte is fixed (timestamps
// included) and compares the whole output.
func TestDumpGolden(t *testing.T) {
	_, logs := writeSegments(t, 3, 2)
	out := mustRun(t, "dump", logs[0], "-records")
	want := logs[0] + `: 279 bytes

` + dumpHeaderLine + `
         0            0            1       2        93  2025-01-02T03:04:05.000Z  2025-01-02T03:04:05.001Z  none                  -1     -1          -1             0  CRC0      ok
  | offset 0  2025-01-02T03:04:05.000Z  key "k0"  value "value 0"
  | offset 1  2025-01-02T03:04:05.001Z  key "k1"  value "value 1"
        93            2            3       2        93  2025-01-02T03:04:05.002Z  2025-01-02T03:04:05.003Z  none                  -1     -1          -1             0  CRC1      ok
  | offset 2  2025-01-02T03:04:05.002Z  key "k2"  value "value 2"
  | offset 3  2025-01-02T03:04:05.003Z  key "k3"  value "value 3"
       186            4            5       2        93  2025-01-02T03:04:05.004Z  2025-01-02T03:04:05.005Z  none                  -1     -1          -1             0  CRC2      ok
  | offset 4  2025-01-02T03:04:05.004Z  key "k4"  value "value 4"
  | offset 5  2025-01-02T03:04:05.005Z  key "k5"  value "value 5"

3 batches, 6 records, offsets 0 to 5, 279 bytes
`
	// The CRCs are checked against the library's reading of the file.
	for i, b := range segmentBatches(t, logs[0]) {
		want = strings.Replace(want, fmt.Sprintf("CRC%d    ", i), fmt.Sprintf("%08x", b.CRC), 1)
	}
	if out != want {
		t.Errorf("dump -records:\n%s\nwant:\n%s", out, want)
	}
}

// dumpRow is a batch line of dump's table, by column.
type dumpRow struct {
	position, base, last, count, size int64
	crc, verdict                      string
}

// dumpRows parses the batch lines of dump's output.
func dumpRows(t *testing.T, out string) []dumpRow {
	t.Helper()
	var rows []dumpRow
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 14 {
			continue
		}
		n := func(i int) int64 {
			v, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("column %d of %q: %v", i, line, err)
			}
			return v
		}
		if f[0] == "position" {
			continue
		}
		rows = append(rows, dumpRow{n(0), n(1), n(2), n(3), n(4), f[12], f[13]})
	}
	return rows
}

func TestDumpListsEveryBatch(t *testing.T) {
	_, logs := writeSegments(t, 40, 3)
	if len(logs) < 3 {
		t.Fatalf("%d segments, want several", len(logs))
	}
	next := int64(0)
	for _, l := range logs {
		out := mustRun(t, "dump", l)
		want := segmentBatches(t, l)
		rows := dumpRows(t, out)
		if len(rows) != len(want) || len(rows) == 0 {
			t.Fatalf("%s: %d batch lines, want %d\n%s", l, len(rows), len(want), out)
		}
		for i, b := range want {
			w := dumpRow{b.Position, b.BaseOffset, b.LastOffset, int64(b.Count), b.Size, fmt.Sprintf("%08x", b.CRC), "ok"}
			if rows[i] != w || b.BaseOffset != next {
				t.Errorf("%s: batch %d: %+v, want %+v at offset %d", l, i, rows[i], w, next)
			}
			next = b.LastOffset + 1
		}
		last := want[len(want)-1]
		summary := fmt.Sprintf("\n%d batches, %d records, offsets %d to %d, %d bytes\n",
			len(want), len(want)*3, want[0].BaseOffset, last.LastOffset, last.Position+last.Size)
		if !strings.HasSuffix(out, summary) {
			t.Errorf("%s: output does not end with %q:\n%s", l, summary, out)
		}
	}
	if next != 120 {
		t.Errorf("dumped offsets up to %d, want 120", next)
	}
}

func TestDumpJSON(t *testing.T) {
	_, logs := writeSegments(t, 3, 2)
	out := mustRun(t, "dump", "-json", "-records", logs[0])
	var doc struct {
		File    string `json:"file"`
		Size    int64  `json:"size"`
		Batches []struct {
			Position      int64     `json:"position"`
			Size          int64     `json:"size"`
			BaseOffset    int64     `json:"base_offset"`
			LastOffset    int64     `json:"last_offset"`
			Count         int       `json:"count"`
			BaseTimestamp time.Time `json:"base_timestamp"`
			Compression   string    `json:"compression"`
			ProducerID    int64     `json:"producer_id"`
			CRC           uint32    `json:"crc"`
			Valid         bool      `json:"valid"`
			Records       []struct {
				Offset    int64     `json:"offset"`
				Timestamp time.Time `json:"timestamp"`
				Key       []byte    `json:"key"`
				Value     []byte    `json:"value"`
			} `json:"records"`
		} `json:"batches"`
		Good     int   `json:"good_batches"`
		Records  int64 `json:"records"`
		End      int64 `json:"end"`
		ZeroTail int64 `json:"zero_tail"`
		Damaged  bool  `json:"damaged"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("dump -json: %v\n%s", err, out)
	}
	want := segmentBatches(t, logs[0])
	if doc.File != logs[0] || doc.Size != 279 || len(doc.Batches) != len(want) || doc.Good != len(want) ||
		doc.Records != 6 || doc.End != 279 || doc.ZeroTail != 0 || doc.Damaged {
		t.Fatalf("dump -json:\n%s", out)
	}
	for i, b := range doc.Batches {
		w := want[i]
		if b.Position != w.Position || b.Size != w.Size || b.BaseOffset != w.BaseOffset || b.LastOffset != w.LastOffset ||
			b.Count != w.Count || !b.BaseTimestamp.Equal(w.BaseTimestamp) || b.Compression != "none" ||
			b.ProducerID != -1 || b.CRC != w.CRC || !b.Valid || len(b.Records) != 2 {
			t.Errorf("batch %d: %+v, want %+v", i, b, w)
		}
		for j, r := range b.Records {
			o := w.BaseOffset + int64(j)
			if r.Offset != o || string(r.Key) != fmt.Sprint("k", o) || string(r.Value) != fmt.Sprint("value ", o) ||
				!r.Timestamp.Equal(t0.Add(time.Duration(o)*time.Millisecond)) {
				t.Errorf("batch %d record %d: %+v", i, j, r)
			}
		}
	}
	// An empty file is a document too.
	empty := filepath.Join(t.TempDir(), "00000000000000000000.log")
	os.WriteFile(empty, nil, 0o644)
	if out := mustRun(t, "dump", "-json", empty); json.Unmarshal([]byte(out), &doc) != nil || len(doc.Batches) != 0 {
		t.Errorf("dump -json of an empty file:\n%s", out)
	}
}

// TestDumpTornSegment cuts a segment inside its third batch, then inside
// its third batch's header: dump prints the two good batches, then the
// torn one with the error, and exits 1.
func TestDumpTornSegment(t *testing.T) {
	_, logs := writeSegments(t, 5, 2)
	good := segmentBatches(t, logs[0])
	if len(good) < 4 {
		t.Fatalf("%d batches in the first segment, want 4 or more", len(good))
	}
	torn := filepath.Join(t.TempDir(), filepath.Base(logs[0]))
	for _, tc := range []struct {
		name string
		cut  int64 // bytes into the third batch
		want string
	}{
		{"mid-batch", good[2].Size - 10, fmt.Sprintf("torn batch: %d bytes, %d left in file", good[2].Size, good[2].Size-10)},
		{"mid-header", 20, "torn batch header: 20 bytes before end of file"},
	} {
		data, err := os.ReadFile(logs[0])
		if err != nil {
			t.Fatal(err)
		}
		pos := good[2].Position
		if err := os.WriteFile(torn, data[:pos+tc.cut], 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runCmd(t, "dump", torn)
		t.Logf("%s:\n%s", tc.name, out)
		if code != 1 {
			t.Errorf("%s: exit status %d, want 1", tc.name, code)
		}
		rows := dumpRows(t, out)
		if len(rows) != 3 && tc.name == "mid-batch" || len(rows) != 2 && tc.name == "mid-header" {
			t.Fatalf("%s: %d batch lines\n%s", tc.name, len(rows), out)
		}
		for i := range 2 {
			if rows[i].position != good[i].Position || rows[i].verdict != "ok" {
				t.Errorf("%s: line %d: %+v, want batch at %d ok", tc.name, i, rows[i], good[i].Position)
			}
		}
		if tc.name == "mid-batch" && (rows[2].position != pos || rows[2].base != good[2].BaseOffset || rows[2].verdict != "DAMAGED") {
			t.Errorf("%s: damaged line %+v", tc.name, rows[2])
		}
		for _, want := range []string{
			fmt.Sprintf("\n  ^ at byte %d: %s\n", pos, tc.want),
			fmt.Sprintf("\nDAMAGED at byte %d, after 2 batches, 4 records, offsets 0 to 3, %d bytes\n", pos, pos),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: stdout lacks %q", tc.name, want)
			}
		}
		if want := fmt.Sprintf("stream dump: corrupt data in %s at byte %d: %s\n", torn, pos, tc.want); errOut != want {
			t.Errorf("%s: stderr %q, want %q", tc.name, errOut, want)
		}
		if !regexp.MustCompile(`(?m)^ +` + strconv.FormatInt(pos, 10) + ` .*DAMAGED$`).MatchString(out) {
			t.Errorf("%s: no DAMAGED line at %d", tc.name, pos)
		}

		// The same as JSON: a document, the damage in its last batch.
		code, out, _ = runCmd(t, "dump", "-json", torn)
		var doc struct {
			Batches []struct {
				Position int64  `json:"position"`
				Valid    bool   `json:"valid"`
				Error    string `json:"error"`
			} `json:"batches"`
			Good      int   `json:"good_batches"`
			Damaged   bool  `json:"damaged"`
			DamagedAt int64 `json:"damaged_at"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 1 {
			t.Fatalf("%s: dump -json: status %d, %v\n%s", tc.name, code, err, out)
		}
		last := doc.Batches[len(doc.Batches)-1]
		if len(doc.Batches) != 3 || doc.Good != 2 || !doc.Damaged || doc.DamagedAt != pos ||
			last.Position != pos || last.Valid || last.Error != tc.want {
			t.Errorf("%s: dump -json:\n%s", tc.name, out)
		}
	}
}

// TestDumpLiveSegment dumps the active segment of a directory in use:
// dump needs no lock, and the preallocated zeros after the data end it.
func TestDumpLiveSegment(t *testing.T) {
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("live", stream.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	for i := range 3 {
		if _, err := p.Append(&stream.Record{Key: []byte{byte(i), 0xff}, Value: []byte("v\x00"),
			Headers: []stream.Header{{Key: "trace", Value: []byte("abc")}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Append(&stream.Record{Value: []byte(strings.Repeat("é", 100))}); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "dump", "-records", "-max-bytes", "9", filepath.Join(p.Dir(), "00000000000000000000.log"))
	t.Logf("\n%s", out)
	if rows := dumpRows(t, out); len(rows) != 4 {
		t.Errorf("%d batch lines, want 4", len(rows))
	}
	for _, want := range []string{
		`  | offset 1  `,
		`key 0x01ff  value 0x7600  headers "trace"="abc"` + "\n",
		`  | offset 3  `,
		`key null  value "éééé"...(200 bytes)` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`\n4 batches, 4 records, offsets 0 to 3, (\d+) bytes; then \d+ bytes of zeros from byte (\d+), the preallocated tail of an active segment\n$`).MatchString(out) {
		t.Errorf("summary: want the zero tail of an active segment")
	}
}

func TestFormatBytes(t *testing.T) {
	for _, tc := range []struct {
		in    []byte
		limit int
		want  string
	}{
		{nil, 0, "null"},
		{[]byte{}, 0, `""`},
		{[]byte("hello world"), 0, `"hello world"`},
		{[]byte("tab\there"), 0, `"tab\there"`},
		{[]byte("line\n"), 0, `0x6c696e650a`},
		{[]byte{0, 1, 0xfe}, 0, "0x0001fe"},
		{[]byte("hello world"), 5, `"hello"...(11 bytes)`},
		{[]byte{0, 1, 2, 3}, 2, `0x0001...(4 bytes)`},
		{[]byte("日本語"), 4, `"日"...(9 bytes)`},
		{[]byte("\xff\xfe"), 0, "0xfffe"},
	} {
		if got := formatBytes(tc.in, tc.limit); got != tc.want {
			t.Errorf("formatBytes(%q, %d) = %s, want %s", tc.in, tc.limit, got, tc.want)
		}
	}
}

// dump takes -dir as the other commands do: a relative file is found
// under DIR/topics.
func TestDumpDir(t *testing.T) {
	dir, logs := writeSegments(t, 5, 2)
	rel, err := filepath.Rel(filepath.Join(dir, "topics"), logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustRun(t, "dump", "-dir", dir, rel), mustRun(t, "dump", logs[0]); got != want {
		t.Fatalf("dump -dir %s %s:\n%s\nwant what dump %s prints:\n%s", dir, rel, got, logs[0], want)
	}
	if got, want := mustRun(t, "dump", rel, "-dir", dir), mustRun(t, "dump", logs[0]); got != want {
		t.Fatalf("dump %s -dir %s:\n%s\nwant:\n%s", rel, dir, got, want)
	}
}
