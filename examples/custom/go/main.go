// Command ledger is a processor for Tributary's delivery contract (docs/processors/contract.md) in Go,
// standard library only, built static (CGO_ENABLED=0) so that its image is the binary alone.
//
// Tributary's worker, beside this container in the pod, POSTs each message to it as a CloudEvent in HTTP
// binary mode: the body as it came, the attributes in ce-* headers. This service:
//
//   - records each event once in an append-only ledger (JSON lines), idempotent by ce-id: a redelivered
//     message (delivery is at least once) is acknowledged again and not recorded twice, across restarts
//     too when the ledger is on a volume that outlives the container (it is read back at start);
//   - answers 400 to a body that is not a JSON object: Tributary dead-letters the message at once with
//     "HTTP 400: <the start of this answer>" as its reason;
//   - answers 503 while it cannot write the ledger, so Tributary retries the message with its backoff;
//   - logs one JSON line per event to stdout (what it did and the event's id), and one when it starts,
//     becomes ready and stops;
//   - serves GET /healthz for the pod's probes (the worker sends nothing before it answers 200);
//   - on SIGTERM (Kubernetes stops this native sidecar after the worker has drained) finishes what it is
//     answering and exits.
//
// Settings, from the environment: PORT (default 8080; Tributary sets it to spec.container.port),
// LEDGER (default /tmp/ledger.jsonl). Two more make behaviour a test can watch: DELAY (a Go duration such
// as "3s": each event is held that long before it is recorded, and a "holding" line is logged when it
// arrives, so a request can be caught in flight) and READY_AFTER (a duration: /healthz answers 503 until
// that long after the start, a slow start).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBody is the largest body accepted (SQS's limit is 256 KiB, Storage Queue's 64 KiB).
const maxBody = 1 << 20

// contextAttributes are the CloudEvents attributes that are not extensions.
var contextAttributes = map[string]bool{
	"ce-id": true, "ce-source": true, "ce-type": true, "ce-time": true, "ce-specversion": true,
}

// entry is one ledger line.
type entry struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Source      string            `json:"source"`
	Time        string            `json:"time,omitempty"`
	Extensions  map[string]string `json:"extensions,omitempty"`
	Traceparent string            `json:"traceparent,omitempty"`
	Body        json.RawMessage   `json:"body"`
}

// ledger is the append-only file and the ids it holds; deliveries arrive concurrently.
type ledger struct {
	mu   sync.Mutex
	path string
	seen map[string]bool
}

// openLedger reads back the ids an earlier run recorded.
func openLedger(path string) (*ledger, error) {
	l := &ledger{path: path, seen: map[string]bool{}}
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 64*1024), 2*maxBody)
	for scanner.Scan() {
		var e entry
		// A torn last line from a crash is skipped: its message was not acknowledged and comes again.
		if json.Unmarshal(scanner.Bytes(), &e) == nil && e.ID != "" {
			l.seen[e.ID] = true
		}
	}
	return l, scanner.Err()
}

// record appends e unless its id is there already; true when it was new.
func (l *ledger) record(e entry) (bool, error) {
	line, err := json.Marshal(e)
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[e.ID] {
		return false, nil
	}
	file, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	if _, err = file.Write(append(line, '\n')); err == nil {
		err = file.Sync()
	}
	if closeErr := file.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return false, err
	}
	l.seen[e.ID] = true
	return true, nil
}

// processor answers the worker's deliveries and the probes.
type processor struct {
	ledger   *ledger
	log      *slog.Logger
	delay    time.Duration
	readyAt  time.Time
	ready    atomic.Bool
	inFlight atomic.Int64
}

func (p *processor) healthz(w http.ResponseWriter, _ *http.Request) {
	if time.Now().Before(p.readyAt) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	if !p.ready.Swap(true) {
		p.log.Info("ready")
	}
	fmt.Fprintln(w, "ok")
}

func (p *processor) deliver(w http.ResponseWriter, r *http.Request) {
	p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	id := r.Header.Get("ce-id")
	if id == "" {
		p.answer(w, http.StatusBadRequest, "rejected", id, "not a CloudEvent: no ce-id header")
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		p.log.Warn("unread", "id", id, "error", err.Error())
		return // the connection is gone: the worker retries the message
	}
	if len(raw) > maxBody {
		p.answer(w, http.StatusRequestEntityTooLarge, "rejected", id, "body larger than 1 MiB")
		return
	}
	if !json.Valid(raw) {
		p.answer(w, http.StatusBadRequest, "rejected", id, "body is not JSON")
		return
	}
	var object map[string]json.RawMessage
	if json.Unmarshal(raw, &object) != nil || object == nil {
		p.answer(w, http.StatusBadRequest, "rejected", id, "body is not a JSON object")
		return
	}
	if !p.hold(r.Context(), id) {
		return
	}
	e := entry{
		ID:          id,
		Type:        r.Header.Get("ce-type"),
		Source:      r.Header.Get("ce-source"),
		Time:        r.Header.Get("ce-time"),
		Extensions:  extensions(r.Header),
		Traceparent: r.Header.Get("traceparent"),
		Body:        raw,
	}
	fresh, err := p.ledger.record(e)
	switch {
	case err != nil:
		p.answer(w, http.StatusServiceUnavailable, "unavailable", id, "ledger unavailable: "+err.Error())
	case fresh:
		p.answer(w, http.StatusNoContent, "recorded", id, "")
	default:
		p.answer(w, http.StatusNoContent, "duplicate", id, "")
	}
}

// hold waits DELAY before an event is recorded; false when the worker gave up meanwhile (it retries).
func (p *processor) hold(ctx context.Context, id string) bool {
	if p.delay <= 0 {
		return true
	}
	p.log.Info("holding", "id", id, "for", p.delay.String())
	select {
	case <-time.After(p.delay):
		return true
	case <-ctx.Done():
		p.log.Warn("abandoned", "id", id, "error", ctx.Err().Error())
		return false
	}
}

// answer writes the status (and text, if any) and logs the event's one line.
func (p *processor) answer(w http.ResponseWriter, status int, what, id, text string) {
	level := slog.LevelInfo
	if status >= 400 {
		level = slog.LevelWarn
	}
	if text == "" {
		p.log.Log(context.Background(), level, what, "id", id, "status", status)
		w.WriteHeader(status)
		return
	}
	p.log.Log(context.Background(), level, what, "id", id, "status", status, "reason", text)
	http.Error(w, text, status)
}

// extensions are the ce-* headers that are not context attributes, without the prefix.
func extensions(header http.Header) map[string]string {
	out := map[string]string{}
	for name, values := range header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "ce-") && !contextAttributes[lower] && len(values) > 0 {
			out[strings.TrimPrefix(lower, "ce-")] = values[0]
		}
	}
	return out
}

// duration reads a Go duration from the environment; empty is zero.
func duration(name string) time.Duration {
	text := os.Getenv(name)
	if text == "" {
		return 0
	}
	value, err := time.ParseDuration(text)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ledger: %s=%q is not a duration such as 3s or 500ms: %v\n", name, text, err)
		os.Exit(2)
	}
	return value
}

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	path := env("LEDGER", "/tmp/ledger.jsonl")
	book, err := openLedger(path)
	if err != nil {
		log.Error("cannot read the ledger", "path", path, "error", err.Error())
		os.Exit(1)
	}
	p := &processor{ledger: book, log: log, delay: duration("DELAY"), readyAt: time.Now().Add(duration("READY_AFTER"))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", p.healthz)
	mux.HandleFunc("POST /", p.deliver)
	// HOST empty: every address, so the kubelet's probes reach it on the pod's IP (Tributary's
	// NetworkPolicy lets no other pod in).
	server := &http.Server{Addr: env("HOST", "") + ":" + env("PORT", "8080"), Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- server.ListenAndServe() }()
	log.Info("listening", "address", server.Addr, "ledger", path, "recorded", len(book.seen), "delay", p.delay.String())
	select {
	case err := <-done:
		log.Error("serving failed", "error", err.Error())
		os.Exit(1)
	case sig := <-stop:
		log.Info("stopping", "signal", sig.String(), "in_flight", p.inFlight.Load())
	}
	// Kubernetes stops a native sidecar after the worker has exited: normally nothing is in flight.
	// Whatever is, is answered before the process ends (within the pod's grace period).
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		log.Warn("stopped with requests unanswered", "error", err.Error())
	}
	log.Info("stopped")
}
