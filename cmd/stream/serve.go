package main

import (
	"bufio"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/debughttp"
	"github.com/instream/stream/kafkaproto"
)

var serveCommand = &command{
	name:    "serve",
	summary: "serve a directory to Kafka clients on -kafka ADDR, and its debug page on -http ADDR",
	help: `Serve opens the directory (creating it when missing) and answers Kafka's
wire protocol on -kafka (default 127.0.0.1:9092, loopback only: there is
no authentication by default, so do not bind it to a public address) until
interrupted (SIGINT, SIGTERM), then closes cleanly. Package kafkaproto's
documentation lists what is supported.

With -tls-cert and -tls-key (PEM files) it speaks TLS (Kafka's SSL
listener: kcat -X security.protocol=ssl, kgo.DialTLSConfig): traffic is
encrypted. With -sasl-users FILE, clients must authenticate with SASL/PLAIN
(kcat -X security.protocol=sasl_ssl -X sasl.mechanisms=PLAIN -X
sasl.username=U -X sasl.password=P) as one of the users FILE lists, one
"user:password" a line; PLAIN sends the password as it is, so use it with
TLS.

With -auto-create, a client's Metadata request for a missing topic
creates it with -partitions partitions, as Kafka's
auto.create.topics.enable; without it, clients create topics with
CreateTopics (kcat cannot; "stream create" or kadm can). -advertise
sets the host:port clients are told to connect to (default: the
listening address).

With -http (for instance -http 127.0.0.1:8080) it also serves the
read-only debug page of package debughttp at /debug/stream (partitions,
consumer groups and their lag, charts of throughput and lag over the
last minutes, producers, a record browser; ?format=json for JSON, which
"stream topics|groups|consume -url" read),
with no authentication: keep it on a loopback address. -kafka "" turns
the Kafka listener off, to serve only the page.`,
}

// serve registers itself here rather than in main.go's table, so the
// table's file stays untouched by this command.
func init() {
	serveCommand.run = runServe
	commands = append(commands, serveCommand)
}

func runServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) error {
	var dir, addr, httpAddr, advertise, certFile, keyFile, usersFile string
	var autoCreate bool
	var partitions int
	fs := serveCommand.newFlagSet(stderr, &dir)
	fs.StringVar(&addr, "kafka", "127.0.0.1:9092", "listen for Kafka clients on `host:port`")
	fs.StringVar(&httpAddr, "http", "", "serve the debug page at /debug/stream on `host:port` (default: off)")
	fs.StringVar(&advertise, "advertise", "", "the `host:port` clients are told to connect to (default: the listening address)")
	fs.BoolVar(&autoCreate, "auto-create", false, "create a missing topic when a client asks for it")
	fs.StringVar(&certFile, "tls-cert", "", "serve TLS with this PEM certificate `file` (with -tls-key)")
	fs.StringVar(&keyFile, "tls-key", "", "the PEM private key `file` of -tls-cert")
	fs.StringVar(&usersFile, "sasl-users", "", "require SASL/PLAIN as a user of this `file` of user:password lines")
	fs.IntVar(&partitions, "partitions", 1, "partitions of an auto-created topic")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fs, "serve takes no arguments, got %q", fs.Args())
	}
	if addr == "" && httpAddr == "" {
		return usageError(fs, "-kafka \"\" needs -http: nothing to serve")
	}
	if partitions < 1 {
		return usageError(fs, "-partitions %d: must be 1 or more", partitions)
	}
	if (certFile == "") != (keyFile == "") {
		return usageError(fs, "-tls-cert and -tls-key go together")
	}
	var tlsConfig *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var authenticate func(user, password string) bool
	if usersFile != "" {
		users, err := readUsers(usersFile)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		authenticate = func(user, password string) bool {
			want, ok := users[user]
			return ok && subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := stream.Open(dir, &stream.Options{
		AutoCreateTopics: autoCreate,
		DefaultTopic:     stream.TopicConfig{Partitions: partitions},
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	stopHTTP := func() error { return nil }
	if httpAddr != "" {
		if stopHTTP, err = serveDebugPage(httpAddr, s, logger); err != nil {
			s.Close()
			return fmt.Errorf("serve: %w", err)
		}
	}
	if addr != "" {
		err = serveKafka(ctx, addr, advertise, tlsConfig, authenticate, s, logger)
	} else {
		<-ctx.Done()
	}
	if herr := stopHTTP(); err == nil {
		err = herr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// serveKafka answers Kafka's protocol on addr until ctx is done.
func serveKafka(ctx context.Context, addr, advertise string, tlsConfig *tls.Config, authenticate func(user, password string) bool, s *stream.Stream, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	logger.Info("serving Kafka clients", "addr", ln.Addr().String(), "tls", tlsConfig != nil)
	return kafkaproto.Serve(ctx, ln, s, kafkaproto.Config{AdvertisedAddr: advertise, Logger: logger, Authenticate: authenticate})
}

// serveDebugPage serves debughttp's page at /debug/stream on addr (and
// redirects / there) until the returned stop is called; stop waits for
// the requests in flight, up to five seconds.
func serveDebugPage(addr string, s *stream.Stream, logger *slog.Logger) (stop func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	page := debughttp.New(s, nil) // samples for its charts until stop
	mux := http.NewServeMux()
	mux.Handle("/debug/stream", page)
	mux.Handle("/{$}", http.RedirectHandler("/debug/stream", http.StatusFound))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	logger.Info("serving the debug page", "url", "http://"+ln.Addr().String()+"/debug/stream")
	return func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		if serr := <-done; serr != http.ErrServerClosed && err == nil {
			err = serr
		}
		page.Close()
		return err
	}, nil
}

// readUsers reads a -sasl-users file: "user:password" a line; blank lines
// and lines starting with # are skipped.
func readUsers(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, password, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:password", path, n)
		}
		users[user] = password
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s lists no users", path)
	}
	return users, nil
}
