package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/instream/stream"
)

var nodeCommand = &command{
	name:    "node",
	summary: "run a node of a cluster until interrupted",
	help: `Node runs one node of a cluster over TCP: the directory opened with
Options.Cluster, NodeID -id, the nodes' addresses from -peers (the same
list on every node; this node listens on its own). With -create it
creates a topic (on any node; it waits for the others to join). Every
-status interval it prints the controller and each partition's leader,
leader epoch and ISR as this node sees them (JSON lines with -json).
Interrupt it (Ctrl-C, SIGTERM) to close the node, which hands its
partitions over first.`,
}

func init() { nodeCommand.run = runNode }

func runNode(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var dir, peersFlag, create string
	var id, partitions, rf int
	var every time.Duration
	var asJSON bool
	fs := nodeCommand.newFlagSet(stderr, &dir)
	fs.IntVar(&id, "id", 0, "this node's `ID` (> 0)")
	fs.StringVar(&peersFlag, "peers", "", "every node as `ID=HOST:PORT,...`, this one included")
	fs.StringVar(&create, "create", "", "create `TOPIC` (if it does not exist)")
	fs.IntVar(&partitions, "partitions", 1, "partitions of the -create topic")
	fs.IntVar(&rf, "rf", 3, "replication factor of the -create topic")
	fs.DurationVar(&every, "status", 2*time.Second, "print the cluster's state this often (0: never)")
	fs.BoolVar(&asJSON, "json", false, "print the state as JSON lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	if id <= 0 {
		return usageError(fs, "-id must be > 0")
	}
	addrs, peers, err := parsePeers(peersFlag)
	if err != nil {
		return usageError(fs, "-peers: %v", err)
	}
	self := stream.NodeID(id)
	if addrs[self] == "" {
		return usageError(fs, "-peers does not list -id %d", id)
	}
	tr, err := stream.NewTCPTransport(stream.TCPConfig{Listen: addrs[self], Peers: addrs})
	if err != nil {
		return err
	}
	s, err := stream.Open(dir, &stream.Options{Cluster: &stream.ClusterConfig{NodeID: self, Peers: peers, Transport: tr}})
	if err != nil {
		tr.Close()
		return err
	}
	fmt.Fprintf(stderr, "node %d serving %s on %s\n", id, dir, addrs[self])
	if create != "" {
		_, err := s.CreateTopic(create, stream.TopicConfig{Partitions: partitions, ReplicationFactor: rf})
		if err != nil && !errors.Is(err, stream.ErrTopicExists) {
			s.Close()
			return err
		}
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return s.Close()
		case <-tick:
			printClusterState(stdout, s, asJSON)
		}
	}
}

type partitionLine struct {
	Topic     string          `json:"topic"`
	Partition int32           `json:"partition"`
	Leader    stream.NodeID   `json:"leader"`
	Epoch     int32           `json:"leader_epoch"`
	ISR       []stream.NodeID `json:"isr"`
	Replicas  []stream.NodeID `json:"replicas"`
	HW        int64           `json:"high_watermark,omitempty"`
}

func printClusterState(w io.Writer, s *stream.Stream, asJSON bool) {
	c := s.Cluster()
	var parts []partitionLine
	for _, name := range c.Topics() {
		for i := int32(0); ; i++ {
			ps, err := c.PartitionState(name, i)
			if err != nil {
				break
			}
			parts = append(parts, partitionLine{Topic: name, Partition: i, Leader: ps.Leader, Epoch: ps.LeaderEpoch,
				ISR: ps.ISR, Replicas: ps.Replicas, HW: ps.HighWatermark})
		}
	}
	if asJSON {
		json.NewEncoder(w).Encode(struct {
			Node       stream.NodeID   `json:"node"`
			Controller stream.NodeID   `json:"controller"`
			Partitions []partitionLine `json:"partitions"`
		}{c.NodeID(), c.Controller(), parts})
		return
	}
	fmt.Fprintf(w, "%s node %d, controller %d\n", time.Now().Format("15:04:05"), c.NodeID(), c.Controller())
	for _, p := range parts {
		fmt.Fprintf(w, "  %s-%d leader %d epoch %d isr %v replicas %v\n", p.Topic, p.Partition, p.Leader, p.Epoch, p.ISR, p.Replicas)
	}
}
