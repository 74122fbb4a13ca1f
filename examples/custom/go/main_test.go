package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newProcessor(t *testing.T, path string) *processor {
	t.Helper()
	book, err := openLedger(path)
	if err != nil {
		t.Fatal(err)
	}
	return &processor{ledger: book, log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
}

func post(p *processor, id, body string) *httptest.ResponseRecorder {
	request := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	if id != "" {
		request.Header.Set("ce-id", id)
	}
	request.Header.Set("ce-type", "com.example.paid")
	request.Header.Set("ce-region", "eu")
	recorder := httptest.NewRecorder()
	p.deliver(recorder, request)
	return recorder
}

func lines(t *testing.T, path string) int {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(text), "\n")
}

func TestAnEventIsRecordedOnceAcrossRedeliveriesAndRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	p := newProcessor(t, path)
	for range 2 {
		if code := post(p, "m-1", `{"amount": 3}`).Code; code != http.StatusNoContent {
			t.Fatalf("status %d", code)
		}
	}
	// A restart reads the ledger back: the same id is not recorded again.
	if code := post(newProcessor(t, path), "m-1", `{"amount": 3}`).Code; code != http.StatusNoContent {
		t.Fatalf("status %d after a restart", code)
	}
	if n := lines(t, path); n != 1 {
		t.Fatalf("%d ledger lines, want 1", n)
	}
}

func TestWhatCanNeverSucceedIsA400AndNotRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	p := newProcessor(t, path)
	cases := map[string][2]string{
		"not json": {"m-2", "not json"},
		"an array": {"m-3", "[1, 2]"},
		"null":     {"m-4", "null"},
		"no ce-id": {"", "{}"},
	}
	for name, c := range cases {
		if code := post(p, c[0], c[1]).Code; code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, code)
		}
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a rejected event reached the ledger")
	}
}

func TestAnUnwritableLedgerAsksForARetry(t *testing.T) {
	p := newProcessor(t, filepath.Join(t.TempDir(), "missing", "ledger.jsonl"))
	if code := post(p, "m-5", "{}").Code; code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", code)
	}
}

func TestReadinessWaitsForReadyAfter(t *testing.T) {
	p := newProcessor(t, filepath.Join(t.TempDir(), "ledger.jsonl"))
	p.readyAt = time.Now().Add(time.Hour)
	recorder := httptest.NewRecorder()
	p.healthz(recorder, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if recorder.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d before READY_AFTER, want 503", recorder.Code)
	}
	p.readyAt = time.Now()
	recorder = httptest.NewRecorder()
	p.healthz(recorder, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if recorder.Code != http.StatusOK {
		t.Fatalf("status %d once ready, want 200", recorder.Code)
	}
}
