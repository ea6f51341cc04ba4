// Command jobqueue is a durable job queue on stream that survives kill -9.
//
// A producer enqueues jobs on the topic "jobs" (4 partitions, keyed by job
// ID) with Producer.Send under SyncAlways, the default: a job is
// acknowledged once it is fsynced. Worker goroutines, members of the share
// group "workers", acquire jobs one by one with ShareMember.Run and record
// each completion on the topic "done" before their handler returns; Run
// then accepts the job. A share group, unlike a consumer group, hands each
// record to one worker at a time whatever its partition, so there can be
// more workers than partitions and a slow job holds up no other: a job
// whose handler fails is released and retried after a backoff, and after
// five deliveries copied to "jobs-dead" instead.
//
// Killing the process at any moment loses no acknowledged job. On restart
// the producer goes on after the jobs already in the log, and the workers
// resume from the share group's state in meta.db: accepted jobs are never
// handed out again; a job processed but not yet accepted when the process
// died is processed again: delivery is at least once, and such duplicates
// show as two completions of one job on "done".
//
// Run it, stop it (Ctrl-C, or kill -9 from another terminal) and run it
// again: it picks up where it stopped, and exits once every job is done.
//
//	go run ./examples/jobqueue -dir /tmp/jobqueue -jobs 5000
//
// With -check it tests itself, the way CI runs it: it starts itself as a
// child process on a temporary directory, SIGKILLs the child mid-work
// several times and lets a last run finish. After every run, before the
// next one could enqueue a missing job again, it reads the log itself and
// checks that every job a child reported acknowledged is there; at the
// end, that every acknowledged job was processed at least once. It exits
// with status 0 only if none was lost.
//
//	go run ./examples/jobqueue -check
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/instream/stream"
)

// Job is a unit of work, the value of a record on "jobs".
type Job struct {
	ID   int    `json:"id"`
	Task string `json:"task"`
}

// Completion records that a worker finished a job, the value of a record
// on "done".
type Completion struct {
	Job    int    `json:"job"`
	Worker string `json:"worker"`
	PID    int    `json:"pid"`
}

const (
	jobsTopic   = "jobs"
	doneTopic   = "done"
	deadTopic   = "jobs-dead"
	workerGroup = "workers"
)

// config is what one run of the queue does.
type config struct {
	dir      string
	jobs     int           // jobs to enqueue in all, over every run
	workers  int           // worker goroutines
	work     time.Duration // time one job takes
	interval time.Duration // pause between two enqueued jobs
	progress bool          // print "enqueued ID" and "done ID" lines
}

func main() {
	var cfg config
	flag.StringVar(&cfg.dir, "dir", "./jobqueue-data", "stream directory holding the queue")
	flag.IntVar(&cfg.jobs, "jobs", 1000, "jobs to enqueue in all; a restart enqueues the rest")
	flag.IntVar(&cfg.workers, "workers", 8, "worker goroutines (more than the 4 partitions: a share group allows it)")
	flag.DurationVar(&cfg.work, "work", 2*time.Millisecond, "time each job takes")
	flag.DurationVar(&cfg.interval, "interval", time.Millisecond, "pause between enqueued jobs")
	flag.BoolVar(&cfg.progress, "progress", false, "print a line per job enqueued and done (used by -check)")
	check := flag.Bool("check", false, "self-test: run the queue as a child process on a temporary directory, kill -9 it several times, verify no job was lost")
	kills := flag.Int("kills", 6, "with -check: how many times to kill the child")
	seed := flag.Uint64("seed", 0, "with -check: seed for the kill times (0: from the clock)")
	flag.Parse()

	var err error
	if *check {
		err = selfCheck(cfg, *kills, *seed)
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = runQueue(ctx, cfg)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobqueue:", err)
		os.Exit(1)
	}
}

// runQueue enqueues the jobs not yet enqueued and processes jobs until
// every one is done or ctx ends.
func runQueue(ctx context.Context, cfg config) (err error) {
	s, err := stream.Open(cfg.dir, nil) // SyncAlways: acknowledged means fsynced
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	if _, err := ensureTopic(s, jobsTopic, 4); err != nil {
		return err
	}
	if _, err := ensureTopic(s, doneTopic, 1); err != nil {
		return err
	}
	if _, err := ensureTopic(s, deadTopic, 1); err != nil {
		return err
	}

	// Which jobs are in the log already: acknowledged ones, and maybe a
	// few written but not yet acknowledged when the process died.
	inLog := map[int]bool{}
	err = readAll(ctx, s, jobsTopic, func(r *stream.Record) error {
		_, job, err := stream.Decode(r, stream.String, stream.JSON[Job]())
		inLog[job.ID] = true
		return err
	})
	if err != nil {
		return err
	}
	enqueued := len(inLog)
	done, err := completions(ctx, s)
	if err != nil {
		return err
	}
	out := &lineWriter{w: os.Stdout, on: cfg.progress}
	track := newTracker(max(cfg.jobs, enqueued), done, out)
	startEnqueued, startDone := enqueued, track.distinct()
	if !cfg.progress {
		fmt.Printf("jobqueue: %s: %d jobs enqueued, %d done; enqueuing up to %d with %d workers\n",
			cfg.dir, enqueued, startDone, cfg.jobs, cfg.workers)
	}

	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		return err
	}
	closeProducer := sync.OnceValue(p.Close) // delivers what it holds
	defer func() { err = errors.Join(err, closeProducer()) }()
	jobsOut := stream.NewTypedProducer(p, stream.String, stream.JSON[Job]())
	doneOut := stream.NewTypedProducer(p, stream.String, stream.JSON[Completion]())

	g, err := s.ShareGroup(workerGroup, shareConfig)
	if err != nil {
		return err
	}

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg     sync.WaitGroup
		errMu  sync.Mutex
		runErr error // the first error of a goroutine below
	)
	fail := func(err error) {
		errMu.Lock()
		runErr = errors.Join(runErr, err)
		errMu.Unlock()
		cancel()
	}

	// The workers.
	pid := os.Getpid()
	for i := range cfg.workers {
		// A small MaxPollRecords keeps the jobs a worker holds few, so
		// that the others get the rest.
		m, err := g.Join(ctx, stream.ShareMemberConfig{MaxPollRecords: 8, FetchMaxWait: 200 * time.Millisecond})
		if err != nil {
			fail(err)
			break
		}
		name := fmt.Sprintf("worker-%d", i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := m.Run(ctx, func(ctx context.Context, a *stream.Acquired) error {
				_, job, err := stream.Decode(&a.Record, stream.String, stream.JSON[Job]())
				if err != nil {
					return err
				}
				if err := process(ctx, job, cfg.work); err != nil {
					return err
				}
				// Record the completion durably before Run accepts the
				// job, even when shutting down: the job is done.
				if _, err := doneOut.Send(context.WithoutCancel(ctx), doneTopic, strconv.Itoa(job.ID), Completion{Job: job.ID, Worker: name, PID: pid}); err != nil {
					return err
				}
				track.complete(job.ID)
				return nil
			})
			if errors.Is(err, context.Canceled) {
				err = nil // shutting down
			}
			// Close gives back the jobs the worker holds and leaves.
			if err := errors.Join(err, m.Close()); err != nil {
				fail(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}

	// The producer enqueues the jobs not in the log yet, one every
	// interval, as they might arrive in a service. SendAsync batches
	// them: jobs sent while a batch is being fsynced share the next fsync.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := range cfg.jobs {
			if inLog[id] {
				continue
			}
			job := Job{ID: id, Task: fmt.Sprintf("resize image-%05d.jpg", id)}
			jobsOut.SendAsync(jobsTopic, strconv.Itoa(id), job, func(_ *stream.Record, err error) {
				if err != nil {
					fail(fmt.Errorf("enqueue job %d: %w", id, err))
					return
				}
				track.enqueued(id) // acknowledged: durable
			})
			if sleep(ctx, cfg.interval) != nil {
				return // Close below delivers what was sent
			}
		}
	}()

	select {
	case <-track.allDone:
	case <-ctx.Done():
	}
	cancel()
	wg.Wait()
	if err := closeProducer(); err != nil {
		return err
	}
	errMu.Lock()
	defer errMu.Unlock()
	if runErr != nil {
		return runErr
	}
	if !cfg.progress {
		enq, dist, dups := track.counts()
		fmt.Printf("jobqueue: %d jobs enqueued (%d this run), %d done (%d this run), %d redeliveries in all\n",
			startEnqueued+enq, enq, dist, dist-startDone, dups)
		if parent.Err() != nil {
			fmt.Printf("jobqueue: interrupted with %d jobs to go; run again to go on\n", track.want-dist)
		}
	}
	return nil
}

// shareConfig is the workers' share group: every job from the start of
// the log, released jobs retried after 100ms, 200ms, 400ms..., and after
// five deliveries dead-lettered.
var shareConfig = stream.ShareGroupConfig{
	Topics:          []string{jobsTopic},
	StartAt:         stream.StartEarliest,
	MaxDeliveries:   5,
	DeadLetterTopic: deadTopic,
}

// process does a job's work.
func process(ctx context.Context, _ Job, work time.Duration) error {
	return sleep(ctx, work)
}

// ensureTopic creates a topic, or returns it if it exists.
func ensureTopic(s *stream.Stream, name string, partitions int) (*stream.Topic, error) {
	t, err := s.CreateTopic(name, stream.TopicConfig{Partitions: partitions, Retention: -1})
	if errors.Is(err, stream.ErrTopicExists) {
		return s.Topic(name)
	}
	return t, err
}

// completions reads "done" from the start: how many times each job
// completed.
func completions(ctx context.Context, s *stream.Stream) (map[int]int, error) {
	done := map[int]int{}
	err := readAll(ctx, s, doneTopic, func(r *stream.Record) error {
		_, c, err := stream.Decode(r, stream.String, stream.JSON[Completion]())
		if err != nil {
			return err
		}
		done[c.Job]++
		return nil
	})
	return done, err
}

// readAll hands every record of a topic, partition by partition, to fn,
// with a group-less consumer.
func readAll(ctx context.Context, s *stream.Stream, topic string, fn func(*stream.Record) error) (err error) {
	t, err := s.Topic(topic)
	if err != nil {
		return err
	}
	c, err := s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	tps := make([]stream.TopicPartition, t.NumPartitions())
	for i := range tps {
		tps[i] = stream.TopicPartition{Topic: topic, Partition: int32(i)}
	}
	if err := c.Assign(tps...); err != nil { // from each partition's start
		return err
	}
	for r, err := range c.ReadToEnd(ctx) {
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// tracker counts jobs enqueued and done in this process, and says when
// every job is done.
type tracker struct {
	want    int
	out     *lineWriter
	allDone chan struct{} // closed when want jobs are done

	mu       sync.Mutex // guards the fields below
	done     map[int]int
	acked    int // jobs enqueued by this process
	dups     int
	finished bool
}

func newTracker(want int, done map[int]int, out *lineWriter) *tracker {
	t := &tracker{want: want, out: out, allDone: make(chan struct{}), done: done}
	for _, n := range done {
		t.dups += n - 1
	}
	t.checkLocked()
	return t
}

func (t *tracker) enqueued(id int) {
	t.mu.Lock()
	t.acked++
	t.mu.Unlock()
	t.out.printf("enqueued %d\n", id)
}

func (t *tracker) complete(id int) {
	t.mu.Lock()
	t.done[id]++
	if t.done[id] > 1 {
		t.dups++
	}
	t.checkLocked()
	t.mu.Unlock()
	t.out.printf("done %d\n", id)
}

func (t *tracker) checkLocked() {
	if !t.finished && len(t.done) >= t.want {
		t.finished = true
		close(t.allDone)
	}
}

func (t *tracker) distinct() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.done)
}

// counts returns the jobs this process enqueued, the jobs done and the
// redeliveries.
func (t *tracker) counts() (enqueued, distinct, dups int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acked, len(t.done), t.dups
}

// lineWriter writes whole lines from many goroutines, when on.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
	on bool
}

func (l *lineWriter) printf(format string, args ...any) {
	if !l.on {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...) // a reader that went away is no reason to stop working
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// selfCheck runs the queue as a child process on a temporary directory,
// SIGKILLs it kills times at random moments, lets a last run finish, and
// checks that every acknowledged job was processed.
func selfCheck(cfg config, kills int, seed uint64) (err error) {
	start := time.Now()
	dir, err := os.MkdirTemp("", "jobqueue-check-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	cfg.dir = dir
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	rng := rand.New(rand.NewPCG(seed, seed))
	fmt.Printf("jobqueue -check: %d jobs, %d workers, %d kills, seed %d, in %s\n", cfg.jobs, cfg.workers, kills, seed, dir)

	args := []string{
		"-dir", dir, "-jobs", strconv.Itoa(cfg.jobs), "-workers", strconv.Itoa(cfg.workers),
		"-work", cfg.work.String(), "-interval", cfg.interval.String(), "-progress",
	}
	acked := map[int]bool{}
	for run := 1; run <= kills; run++ {
		delay := 100*time.Millisecond + time.Duration(rng.Int64N(int64(300*time.Millisecond)))
		res, err := runChild(exe, args, delay, acked)
		if err != nil {
			return fmt.Errorf("run %d: %w", run, err)
		}
		what := fmt.Sprintf("killed (SIGKILL) after %v", delay.Round(time.Millisecond))
		if !res.killed {
			what = "finished before the kill"
		}
		fmt.Printf("run %d: %s: %d jobs acknowledged, %d completions\n", run, what, res.enqueued, res.done)
		if err := checkAcked(dir, acked); err != nil {
			return fmt.Errorf("after run %d: %w", run, err)
		}
	}
	res, err := runChild(exe, args, 0, acked)
	if err != nil {
		return fmt.Errorf("last run: %w", err)
	}
	fmt.Printf("last run: finished: %d jobs acknowledged, %d completions\n", res.enqueued, res.done)
	if err := checkAcked(dir, acked); err != nil {
		return fmt.Errorf("after the last run: %w", err)
	}
	if err := verify(dir, cfg.jobs, acked); err != nil {
		return err
	}
	fmt.Printf("check passed in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// checkAcked reads the jobs in the log and fails if a job a child
// reported acknowledged is missing: the queue lost it. It runs between
// two children, since the next would enqueue a missing job again and hide
// the loss.
func checkAcked(dir string, acked map[int]bool) (err error) {
	s, err := stream.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	inLog := map[int]bool{}
	err = readAll(context.Background(), s, jobsTopic, func(r *stream.Record) error {
		_, job, err := stream.Decode(r, stream.String, stream.JSON[Job]())
		inLog[job.ID] = true
		return err
	})
	if errors.Is(err, stream.ErrUnknownTopic) && len(acked) == 0 {
		return nil // killed before it created the topic
	}
	if err != nil {
		return err
	}
	var lost []int
	for id := range acked {
		if !inLog[id] {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		slices.Sort(lost)
		return fmt.Errorf("check failed: %d acknowledged jobs are not in the log (lost): %v", len(lost), lost[:min(len(lost), 20)])
	}
	return nil
}

// childResult is what one child process reported.
type childResult struct {
	enqueued, done int
	killed         bool
}

// runChild runs the queue in a child process and reads its progress lines,
// adding the jobs it acknowledged to acked. With killAfter > 0 it SIGKILLs
// the child after that long, unless it finished; otherwise it waits for
// the child, which must finish within a minute.
func runChild(exe string, args []string, killAfter time.Duration, acked map[int]bool) (res childResult, err error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return res, err
	}
	if err := cmd.Start(); err != nil {
		return res, err
	}
	limit := killAfter
	if limit <= 0 {
		limit = time.Minute
	}
	var killed sync.WaitGroup
	timer := time.AfterFunc(limit, func() {
		killed.Add(1)
		defer killed.Done()
		if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
			res.killed = true
		}
	})

	// Lines written before the kill are still in the pipe: read them all.
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		word, num, ok := strings.Cut(sc.Text(), " ")
		id, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		switch word {
		case "enqueued":
			acked[id] = true
			res.enqueued++
		case "done":
			res.done++
		}
	}
	scanErr := sc.Err()
	waitErr := cmd.Wait()
	if !timer.Stop() {
		killed.Wait() // the kill ran (or is running): res.killed is set
	}
	if scanErr != nil {
		return res, scanErr
	}
	if res.killed {
		if killAfter <= 0 {
			return res, fmt.Errorf("the child did not finish within %v", limit)
		}
		return res, nil // exit status: killed, as intended
	}
	return res, waitErr
}

// verify opens what the runs left and checks that every job enqueued was
// enqueued once and processed at least once, and that every job a child
// acknowledged is among them.
func verify(dir string, want int, acked map[int]bool) (err error) {
	s, err := stream.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	ctx := context.Background()
	enqueued := map[int]int{}
	err = readAll(ctx, s, jobsTopic, func(r *stream.Record) error {
		_, job, err := stream.Decode(r, stream.String, stream.JSON[Job]())
		enqueued[job.ID]++
		return err
	})
	if err != nil {
		return err
	}
	done, err := completions(ctx, s)
	if err != nil {
		return err
	}
	g, err := s.ShareGroup(workerGroup, shareConfig)
	if err != nil {
		return err
	}
	stats, err := g.Stats()
	if err != nil {
		return err
	}
	backlog, rejected := int64(0), int64(0)
	for _, st := range stats {
		backlog += st.Backlog
		rejected += st.Rejected
	}

	var problems []string
	lost, twice, redelivered := 0, 0, 0
	for id := range want {
		switch n := enqueued[id]; {
		case n == 0:
			problems = append(problems, fmt.Sprintf("job %d was never enqueued", id))
		case n > 1:
			twice++
		}
		if done[id] == 0 {
			lost++
			if len(problems) < 20 {
				problems = append(problems, fmt.Sprintf("job %d (acknowledged: %v) was never processed", id, acked[id]))
			}
		}
		redelivered += max(done[id]-1, 0)
	}
	for id := range acked {
		if id >= want {
			problems = append(problems, fmt.Sprintf("job %d was acknowledged, but only jobs 0 to %d exist", id, want-1))
		}
		if enqueued[id] == 0 {
			problems = append(problems, fmt.Sprintf("acknowledged job %d is not in the log", id))
		}
	}
	if twice > 0 {
		problems = append(problems, fmt.Sprintf("%d jobs were enqueued twice", twice))
	}
	if backlog != 0 || rejected != 0 {
		problems = append(problems, fmt.Sprintf("share group %s has %d jobs not finished and %d rejected after the last run", workerGroup, backlog, rejected))
	}
	fmt.Printf("verified: %d jobs enqueued, %d acknowledged to the test, %d processed, %d lost, %d processed twice or more (%d redeliveries: at least once)\n",
		len(enqueued), len(acked), len(done), lost, countDups(done), redelivered)
	if len(problems) > 0 {
		return fmt.Errorf("check failed:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

func countDups(done map[int]int) int {
	n := 0
	for _, c := range done {
		if c > 1 {
			n++
		}
	}
	return n
}
