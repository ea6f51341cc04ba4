package stream_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/instream/stream"
)

type order struct {
	ID    int64             `json:"id"`
	Item  string            `json:"item"`
	Qty   int               `json:"qty"`
	Tags  []string          `json:"tags,omitempty"`
	Attrs map[string]string `json:"attrs,omitempty"`
}

func TestJSONCodecRoundTrip(t *testing.T) {
	c := stream.JSON[order]()
	for _, v := range []order{
		{},
		{ID: 1, Item: "book", Qty: 2},
		{ID: math.MaxInt64, Item: "ünïcødé ✓ \"quoted\"\n", Qty: -3, Tags: []string{"a", ""}, Attrs: map[string]string{"k": "v"}},
	} {
		b, err := c.Encode(v)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", v, err)
		}
		if !json.Valid(b) {
			t.Fatalf("Encode(%+v) = %q: not JSON", v, b)
		}
		got, err := c.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%q): %v", b, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("round trip: got %+v, want %+v", got, v)
		}
	}
}

func TestJSONCodecEncoding(t *testing.T) {
	b, err := stream.JSON[order]().Encode(order{ID: 7, Item: "pen", Qty: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":7,"item":"pen","qty":1}`; string(b) != want {
		t.Errorf("Encode = %s, want %s (no trailing newline, struct tags honoured)", b, want)
	}
	// Pointers and maps work as T too.
	p, err := stream.JSON[*order]().Decode([]byte(`{"id":3}`))
	if err != nil || p == nil || p.ID != 3 {
		t.Errorf("Decode into *order = %+v, %v", p, err)
	}
	m, err := stream.JSON[map[string]int]().Decode([]byte(`{"a":1,"b":2}`))
	if err != nil || m["a"] != 1 || m["b"] != 2 {
		t.Errorf("Decode into map = %v, %v", m, err)
	}
}

func TestJSONCodecDecode(t *testing.T) {
	c := stream.JSON[order]()
	tests := []struct {
		name    string
		in      []byte
		want    order
		wantErr bool
	}{
		{name: "object", in: []byte(`{"id":1,"item":"x","qty":2}`), want: order{ID: 1, Item: "x", Qty: 2}},
		{name: "unknown fields ignored", in: []byte(`{"id":1,"extra":true}`), want: order{ID: 1}},
		{name: "surrounding whitespace", in: []byte(" \n{\"id\":4}\t"), want: order{ID: 4}},
		{name: "null", in: []byte(`null`), want: order{}},
		{name: "nil is Kafka's null: zero value", in: nil, want: order{}},
		{name: "empty is not JSON", in: []byte{}, wantErr: true},
		{name: "truncated", in: []byte(`{"id":1,`), wantErr: true},
		{name: "wrong type", in: []byte(`{"id":"one"}`), wantErr: true},
		{name: "array for object", in: []byte(`[1,2]`), wantErr: true},
		{name: "two values", in: []byte(`{"id":1}{"id":2}`), wantErr: true},
		{name: "not JSON", in: []byte("\x00\x01binary"), wantErr: true},
		{name: "number overflows int", in: []byte(`{"qty":1e400}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Decode(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Decode(%q) = %+v, want an error", tt.in, got)
				}
				if !strings.HasPrefix(err.Error(), "stream: JSON codec: decode") {
					t.Errorf("error %q lacks the codec context", err)
				}
				if !reflect.DeepEqual(got, order{}) {
					t.Errorf("Decode returned %+v alongside an error, want the zero value", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}

	// The encoding/json error stays reachable.
	_, err := c.Decode([]byte(`{"id":"one"}`))
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		t.Errorf("error %v does not wrap *json.UnmarshalTypeError", err)
	}
}

func TestJSONCodecEncodeError(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  func() error
	}{
		{"channel", func() error { _, err := stream.JSON[chan int]().Encode(make(chan int)); return err }},
		{"func", func() error { _, err := stream.JSON[func()]().Encode(func() {}); return err }},
		{"NaN", func() error { _, err := stream.JSON[float64]().Encode(math.NaN()); return err }},
	} {
		err := tt.err()
		if err == nil {
			t.Errorf("%s: Encode succeeded, want an error", tt.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "stream: JSON codec: encode") {
			t.Errorf("%s: error %q lacks the codec context", tt.name, err)
		}
	}
}

func TestStringCodec(t *testing.T) {
	for _, tt := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{}, ""},
		{[]byte("hello"), "hello"},
		{[]byte("ünïcødé"), "ünïcødé"},
		{[]byte{0xff, 0xfe, 0}, "\xff\xfe\x00"}, // not UTF-8: kept as is
	} {
		got, err := stream.String.Decode(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("String.Decode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		b, err := stream.String.Encode(tt.want)
		if err != nil || !bytes.Equal(b, tt.in) {
			t.Errorf("String.Encode(%q) = %q, %v; want %q", tt.want, b, err, tt.in)
		}
	}
}

func TestBytesCodec(t *testing.T) {
	for _, in := range [][]byte{nil, {}, []byte("raw"), {0, 1, 2, 255}} {
		enc, err := stream.Bytes.Encode(in)
		if err != nil || !bytes.Equal(enc, in) || (in == nil) != (enc == nil) {
			t.Errorf("Bytes.Encode(%q) = %q, %v", in, enc, err)
		}
		dec, err := stream.Bytes.Decode(in)
		if err != nil || !bytes.Equal(dec, in) || (in == nil) != (dec == nil) {
			t.Errorf("Bytes.Decode(%q) = %q, %v", in, dec, err)
		}
	}
	// Documented: no copies.
	in := []byte("abc")
	if out, _ := stream.Bytes.Decode(in); &out[0] != &in[0] {
		t.Errorf("Bytes.Decode copied its input")
	}
}

// A user's codec plugs into the same seam as the built-ins.
type upperCodec struct{}

func (upperCodec) Encode(s string) ([]byte, error) { return []byte(strings.ToUpper(s)), nil }
func (upperCodec) Decode(b []byte) (string, error) {
	if !bytes.Equal(b, bytes.ToUpper(b)) {
		return "", errors.New("not upper case")
	}
	return string(b), nil
}

func TestCodecInterface(t *testing.T) {
	codecs := map[string]stream.Codec[string]{
		"String": stream.String,
		"JSON":   stream.JSON[string](),
		"user":   upperCodec{},
	}
	for name, c := range codecs {
		b, err := c.Encode("HELLO")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := c.Decode(b); err != nil || got != "HELLO" {
			t.Errorf("%s: round trip = %q, %v", name, got, err)
		}
	}
	if _, err := codecs["user"].Decode([]byte("lower")); err == nil {
		t.Errorf("user codec's decode error was lost")
	}
}

func TestCodecsConcurrent(t *testing.T) {
	c := stream.JSON[order]()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				v := order{ID: int64(g*1000 + i), Item: "x"}
				b, err := c.Encode(v)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := c.Decode(b); err != nil || got.ID != v.ID {
					t.Errorf("concurrent round trip: %+v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func ExampleJSON() {
	type event struct {
		User string `json:"user"`
		N    int    `json:"n"`
	}
	codec := stream.JSON[event]()

	value, _ := codec.Encode(event{User: "ada", N: 3}) // a Record's Value
	fmt.Println(string(value))

	back, _ := codec.Decode(value)
	fmt.Println(back.User, back.N)

	_, err := codec.Decode([]byte(`{"user":42}`))
	fmt.Println(err != nil)
	// Output:
	// {"user":"ada","n":3}
	// ada 3
	// true
}
