package stream

import (
	"encoding/json"
)

// Codec turns values of type T into record keys or values and back: the
// Go counterpart of a Kafka serializer/deserializer pair (key.serializer
// and value.serializer on the producer, key.deserializer and
// value.deserializer on the consumer). Implementations must be safe for
// concurrent use.
//
// The package provides JSON, String and Bytes; any type with these two
// methods plugs in the same way (protobuf, Avro, msgpack, …).
type Codec[T any] interface {
	// Encode returns the bytes stored for v.
	Encode(v T) ([]byte, error)
	// Decode returns the value that b encodes, or an error saying why
	// b is not a valid encoding.
	Decode(b []byte) (T, error)
}

// JSON returns a Codec storing values of T as JSON, with encoding/json,
// like Kafka's JsonSerializer and JsonDeserializer. Decode maps a nil
// slice (Kafka's null, as in a tombstone) to T's zero value, and fails on
// anything that is not one JSON value of a shape T can hold; unknown
// object fields are ignored, as encoding/json does.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errorf("stream: JSON codec: encode %T: %w", v, err)
	}
	return b, nil
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if b == nil {
		return v, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		var zero T
		return zero, errorf("stream: JSON codec: decode %T: %w", v, err)
	}
	return v, nil
}

// String is a Codec storing a string as its bytes, like Kafka's
// StringSerializer and StringDeserializer with UTF-8. It never fails:
// Go strings may hold any bytes, so Decode does not check UTF-8, and a
// nil slice decodes to "".
var String Codec[string] = stringCodec{}

type stringCodec struct{}

func (stringCodec) Encode(s string) ([]byte, error) { return []byte(s), nil }
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }

// Bytes is the identity Codec for raw bytes, like Kafka's
// ByteArraySerializer and ByteArrayDeserializer. It never fails and never
// copies: Encode returns its argument and Decode returns the record's own
// slice, so the caller must not modify a slice after sending it, and
// should copy a decoded one it keeps past the record. nil stays nil.
var Bytes Codec[[]byte] = bytesCodec{}

type bytesCodec struct{}

func (bytesCodec) Encode(b []byte) ([]byte, error) { return b, nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) { return b, nil }
