package main

import (
	"context"
	"fmt"
	"io"
)

var deleteCommand = &command{
	name:    "delete",
	args:    "TOPIC",
	summary: "delete a topic and its files",
	help: `Delete deletes a topic: its partitions' directories and its entry in
meta.db. It does not ask for confirmation. The deletion is crash-safe: if
it is interrupted, the next Open of the directory finishes it.`,
}

func init() { deleteCommand.run = runDelete }

func runDelete(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var dir string
	var asJSON bool
	fs := deleteCommand.newFlagSet(stderr, &dir)
	fs.BoolVar(&asJSON, "json", false, "print what was deleted as JSON")
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usageError(fs, "want one topic name, got %d arguments", len(names))
	}
	s, err := openExisting(dir)
	if err != nil {
		return err
	}
	t, err := s.Topic(names[0])
	if err != nil {
		s.Close()
		return err
	}
	info := describeTopic(t)
	// Count segments while the files exist. Their sizes are left out: an
	// open active segment is preallocated, so they would not be the sizes
	// topics prints.
	if err := info.measure(); err != nil {
		s.Close()
		return err
	}
	if err := s.DeleteTopic(names[0]); err != nil {
		s.Close()
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	records, segments, _ := info.totals()
	if asJSON {
		return writeJSON(stdout, struct {
			Dir        string `json:"dir"`
			Topic      string `json:"topic"`
			Partitions int    `json:"partitions"`
			Records    int64  `json:"records"`
			Segments   int    `json:"segments"`
		}{dir, info.Name, len(info.Partitions), records, segments})
	}
	_, err = fmt.Fprintf(stdout, "deleted topic %s from %s: %s, %s, %s\n",
		info.Name, dir, plural(len(info.Partitions), "partition"), plural(records, "record"), plural(segments, "segment"))
	return err
}
