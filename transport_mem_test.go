package stream_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// echo is a handler that answers "from <node>: <req>".
func echo(id stream.NodeID) func(context.Context, []byte) []byte {
	return func(_ context.Context, req []byte) []byte {
		return fmt.Appendf(nil, "from %d: %s", id, req)
	}
}

// memNodes returns the transports of nodes 1..n of net, each serving echo.
func memNodes(t *testing.T, net *stream.MemNetwork, n int) []stream.Transport {
	t.Helper()
	ts := make([]stream.Transport, n+1)
	for id := 1; id <= n; id++ {
		ts[id] = net.Transport(stream.NodeID(id))
		if err := ts[id].Serve(echo(stream.NodeID(id))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ts[id].Close() })
	}
	return ts
}

func TestMemNetworkConcurrentCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := memNodes(t, stream.NewMemNetwork(1), 3)
		var wg sync.WaitGroup
		for g := range 50 {
			wg.Go(func() {
				from := ts[1+g%3]
				to := stream.NodeID(1 + (g+1)%3)
				for i := range 20 {
					req := fmt.Sprintf("g%d-%d", g, i)
					got, err := from.Call(t.Context(), to, []byte(req))
					if err != nil {
						t.Error(err)
						return
					}
					if want := fmt.Sprintf("from %d: %s", to, req); string(got) != want {
						t.Errorf("reply %q, want %q", got, want)
					}
				}
			})
		}
		wg.Wait()
	})
}

func TestMemNetworkCutIsolateHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := stream.NewMemNetwork(1)
		ts := memNodes(t, net, 3)
		reach := func() string { // "12 13 21 ..." for every pair that talks
			var ok []string
			for a := 1; a <= 3; a++ {
				for b := 1; b <= 3; b++ {
					_, err := ts[a].Call(t.Context(), stream.NodeID(b), []byte("x"))
					switch {
					case err == nil:
						ok = append(ok, fmt.Sprint(a, b))
					case !errors.Is(err, stream.ErrUnreachable):
						t.Errorf("%d→%d: %v, want ErrUnreachable", a, b, err)
					}
				}
			}
			return strings.Join(ok, " ")
		}
		if got := reach(); got != "1 1 1 2 1 3 2 1 2 2 2 3 3 1 3 2 3 3" {
			t.Fatalf("healthy: %s", got)
		}
		net.Cut(1, 2)
		if got := reach(); got != "1 1 1 3 2 2 2 3 3 1 3 2 3 3" {
			t.Fatalf("after Cut(1, 2): %s", got)
		}
		net.Isolate(3)
		if got := reach(); got != "1 1 2 2 3 3" {
			t.Fatalf("after Isolate(3): %s", got)
		}
		net.Heal()
		if got := reach(); got != "1 1 1 2 1 3 2 1 2 2 2 3 3 1 3 2 3 3" {
			t.Fatalf("after Heal: %s", got)
		}
	})
}

func TestMemNetworkUnreachableAndClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := stream.NewMemNetwork(1)
		a := net.Transport(1)
		defer a.Close()
		if _, err := a.Call(t.Context(), 9, nil); !errors.Is(err, stream.ErrUnreachable) {
			t.Errorf("call to an unknown node: %v, want ErrUnreachable", err)
		}
		b := net.Transport(2)
		if _, err := a.Call(t.Context(), 2, nil); !errors.Is(err, stream.ErrUnreachable) {
			t.Errorf("call to a node not serving: %v, want ErrUnreachable", err)
		}
		if err := b.Serve(echo(2)); err != nil {
			t.Fatal(err)
		}
		if err := b.Serve(echo(2)); !errors.Is(err, stream.ErrInvalidConfig) {
			t.Errorf("second Serve: %v, want ErrInvalidConfig", err)
		}
		b.Close()
		if _, err := a.Call(t.Context(), 2, nil); !errors.Is(err, stream.ErrUnreachable) {
			t.Errorf("call to a closed node: %v, want ErrUnreachable", err)
		}
		if _, err := b.Call(t.Context(), 1, nil); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("call from a closed transport: %v, want ErrClosed", err)
		}
		if err := b.Serve(echo(2)); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("Serve after Close: %v, want ErrClosed", err)
		}
		// The node restarts: a fresh transport under the same ID.
		b = net.Transport(2)
		defer b.Close()
		if err := b.Serve(echo(2)); err != nil {
			t.Fatal(err)
		}
		if got, err := a.Call(t.Context(), 2, []byte("again")); err != nil || string(got) != "from 2: again" {
			t.Errorf("call after restart: %q, %v", got, err)
		}
		// A cut link fails at once, but a done ctx is reported first.
		net.Cut(1, 2)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := a.Call(ctx, 2, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call over a cut link: %v, want context.Canceled", err)
		}
	})
}

func TestMemNetworkCancelPendingCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := stream.NewMemNetwork(1)
		a, b := net.Transport(1), net.Transport(2)
		release := make(chan struct{})
		var handled atomic.Int32
		handlerErr := make(chan error, 1)
		b.Serve(func(ctx context.Context, req []byte) []byte {
			select {
			case <-release:
			case <-ctx.Done(): // the caller's deadline travels
				handlerErr <- ctx.Err()
				<-release // and the reply comes late
			}
			handled.Add(1)
			return []byte("late")
		})
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		if _, err := a.Call(ctx, 2, []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call past its deadline: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("call returned after %v, want 1s", d)
		}
		if err := <-handlerErr; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("handler's ctx: %v, want the caller's deadline", err)
		}
		close(release)
		synctest.Wait()
		if handled.Load() != 1 {
			t.Errorf("handler ran %d times, want 1", handled.Load())
		}

		// Close fails a pending call from the closed node, and waits for
		// the handlers running on it.
		a.Serve(func(ctx context.Context, req []byte) []byte { <-ctx.Done(); return nil })
		b2 := b
		errc := make(chan error)
		go func() { _, err := b2.Call(t.Context(), 1, nil); errc <- err }()
		synctest.Wait()
		a.Close() // ends the handler via its ctx, then the call gets ErrUnreachable
		if err := <-errc; !errors.Is(err, stream.ErrUnreachable) {
			t.Errorf("call to a node that closed: %v, want ErrUnreachable", err)
		}
		c := net.Transport(3)
		c.Serve(func(ctx context.Context, req []byte) []byte { <-ctx.Done(); return nil })
		defer c.Close()
		go func() { _, err := b.Call(t.Context(), 3, nil); errc <- err }()
		synctest.Wait()
		b.Close()
		if err := <-errc; !errors.Is(err, stream.ErrClosed) {
			t.Errorf("call pending on a transport that closed: %v, want ErrClosed", err)
		}
	})
}

// memTrace runs a fixed conversation over a faulty network with seed and
// returns what happened to every call, with its duration on synctest's
// clock: the same seed must give the same trace.
func memTrace(t *testing.T, seed int64) string {
	var trace strings.Builder
	synctest.Test(t, func(t *testing.T) {
		net := stream.NewMemNetwork(seed)
		var mu sync.Mutex
		handled := map[string]int{}
		ts := make([]stream.Transport, 4)
		for id := 1; id <= 3; id++ {
			ts[id] = net.Transport(stream.NodeID(id))
			ts[id].Serve(func(_ context.Context, req []byte) []byte {
				mu.Lock()
				handled[string(req)]++
				mu.Unlock()
				return req
			})
		}
		net.SetFaults(stream.MemFaults{Drop: 0.2, Duplicate: 0.2, Delay: 10 * time.Millisecond, Reorder: 0.2})
		for i := range 60 {
			from, to := 1+i%3, 1+(i+1+i/3)%3
			req := fmt.Sprintf("%d→%d#%d", from, to, i)
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			start := time.Now()
			_, err := ts[from].Call(ctx, stream.NodeID(to), []byte(req))
			cancel()
			outcome := "ok"
			if err != nil {
				outcome = "timeout"
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: %v, want a timeout", req, err)
				}
			}
			fmt.Fprintf(&trace, "%s %s %v\n", req, outcome, time.Since(start))
		}
		time.Sleep(time.Second) // late copies land, at instants the seed decided
		for id := 1; id <= 3; id++ {
			ts[id].Close()
		}
		keys := make([]string, 0, len(handled))
		for k := range handled {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&trace, "handled %s ×%d\n", k, handled[k])
		}
	})
	return trace.String()
}

func TestMemNetworkFaultsDeterministic(t *testing.T) {
	for _, seed := range []int64{1, 2, 3} {
		a, b := memTrace(t, seed), memTrace(t, seed)
		if a != b {
			t.Fatalf("seed %d: two runs differ:\n%s\n---\n%s", seed, a, b)
		}
		// The faults really happen, in every kind.
		if !strings.Contains(a, "timeout") || !strings.Contains(a, "×2") || !strings.Contains(a, " ok ") {
			t.Errorf("seed %d: want timeouts, duplicates and successes:\n%s", seed, a)
		}
		if strings.Count(a, "handled") == 60 {
			t.Errorf("seed %d: no request was dropped:\n%s", seed, a)
		}
	}
	if memTrace(t, 1) == memTrace(t, 2) {
		t.Error("seeds 1 and 2 give the same trace")
	}
}

func TestMemNetworkReorder(t *testing.T) {
	order := func(seed int64) []int {
		var got []int
		synctest.Test(t, func(t *testing.T) {
			net := stream.NewMemNetwork(seed)
			a, b := net.Transport(1), net.Transport(2)
			defer a.Close()
			defer b.Close()
			var mu sync.Mutex
			b.Serve(func(_ context.Context, req []byte) []byte {
				mu.Lock()
				got = append(got, int(req[0]))
				mu.Unlock()
				return nil
			})
			net.SetFaults(stream.MemFaults{Reorder: 0.3})
			var wg sync.WaitGroup
			for i := range 20 {
				wg.Go(func() { a.Call(t.Context(), 2, []byte{byte(i)}) })
				synctest.Wait() // the call is sent (its fate drawn) before the next starts
			}
			wg.Wait()
		})
		return got
	}
	a := order(7)
	if len(a) != 20 {
		t.Fatalf("%d requests arrived, want 20", len(a))
	}
	if slices.IsSorted(a) {
		t.Errorf("requests arrived in order %v; want some overtaken", a)
	}
	if b := order(7); !slices.Equal(a, b) {
		t.Errorf("same seed, different orders: %v, %v", a, b)
	}
}

func TestMemNetworkCutInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := stream.NewMemNetwork(1)
		ts := memNodes(t, net, 2)
		net.SetFaults(stream.MemFaults{Delay: time.Second, Reorder: 1}) // every request waits ≥ 2s
		errc := make(chan error)
		go func() { _, err := ts[1].Call(t.Context(), 2, nil); errc <- err }()
		synctest.Wait()
		net.Cut(1, 2)
		if err := <-errc; !errors.Is(err, stream.ErrUnreachable) {
			t.Errorf("call whose link was cut in flight: %v, want ErrUnreachable", err)
		}
	})
}

func TestMemNetworkDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := stream.NewMemNetwork(1)
		a, b := net.Transport(1), net.Transport(2)
		defer a.Close()
		defer b.Close()
		var mu sync.Mutex
		var seen []string
		b.Serve(func(_ context.Context, req []byte) []byte {
			mu.Lock()
			seen = append(seen, string(req))
			mu.Unlock()
			return req
		})
		net.SetFaults(stream.MemFaults{Duplicate: 1, Delay: time.Second})
		buf := []byte("first")
		if got, err := a.Call(t.Context(), 2, buf); err != nil || string(got) != "first" {
			t.Fatalf("call: %q, %v", got, err)
		}
		copy(buf, "XXXXX") // the caller reuses its buffer; the late copy must not see it
		time.Sleep(3 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(seen, []string{"first", "first"}) {
			t.Errorf("handler saw %q, want the request twice", seen)
		}
	})
}
