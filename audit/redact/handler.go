package redact

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"log/slog"
	"math"
	"reflect"
	"strconv"

	"github.com/lmittmann/tint"
)

// maxDepth bounds how deep a logged value is walked. Maps built in Go can
// contain themselves; anything deeper than this is hidden rather than
// walked forever.
const maxDepth = 64

// NewRedactingHandler wraps inner so that every record's message and
// attributes are redacted (see the package documentation for the rules)
// before inner sees them. It is the only sanctioned way to build a
// handler in webhookd: handlers added later (a second sink, a sampler)
// must sit inside it, never beside it. Wrapping twice is harmless.
func NewRedactingHandler(inner slog.Handler) slog.Handler {
	if h, ok := inner.(*redactingHandler); ok {
		return h
	}
	return &redactingHandler{inner: inner}
}

// redactingHandler is immutable, so it is safe for concurrent use as long
// as inner is, which slog requires of every handler.
type redactingHandler struct {
	inner slog.Handler
	// hidden is set below a WithGroup whose name denotes personal data
	// (WithGroup("private_metadata")): every value logged inside it is
	// hidden, whatever its own key.
	hidden bool
}

func (h *redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, maskString(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a, h.hidden, 0))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	redacted := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		redacted[i] = redactAttr(a, h.hidden, 0)
	}
	return &redactingHandler{inner: h.inner.WithAttrs(redacted), hidden: h.hidden}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &redactingHandler{
		inner:  h.inner.WithGroup(maskString(name)),
		hidden: h.hidden || keySensitivity(name) != visible,
	}
}

// redactAttr returns a copy of a with personal data hidden. It never
// changes what the caller passed in: a map logged with slog.Any is copied,
// not edited, because the caller may still be using it.
func redactAttr(a slog.Attr, hidden bool, depth int) slog.Attr {
	color, tinted := tintColor(a.Value)
	v := a.Value.Resolve()
	out := slog.Attr{Key: maskString(a.Key), Value: redactValue(a.Key, v, hidden, depth)}
	if tinted {
		// Keep tint's colouring (tint.Err shows errors in red); the
		// value inside has been redacted like any other.
		return tint.Attr(color, out)
	}
	return out
}

func redactValue(key string, v slog.Value, hidden bool, depth int) slog.Value {
	sens := keySensitivity(key)
	if hidden {
		sens = personal
	}
	if v.Kind() == slog.KindGroup && key == "" {
		// An inline group has no key of its own; its members are judged
		// by theirs.
		sens = visible
	}
	switch {
	case sens == personal:
		return slog.StringValue(Redacted)
	case sens == credential && v.Kind() != slog.KindBool:
		return slog.StringValue(Redacted)
	case depth >= maxDepth:
		return slog.StringValue(Redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		if isIDKey(key) {
			return slog.StringValue(maskID(v.String()))
		}
		return slog.StringValue(maskString(v.String()))
	case slog.KindGroup:
		members := v.Group()
		redacted := make([]slog.Attr, len(members))
		for i, m := range members {
			redacted[i] = redactAttr(m, hidden, depth+1)
		}
		return slog.GroupValue(redacted...)
	case slog.KindAny:
		return valueOf(redactAny(v.Any(), depth+1))
	default:
		// Numbers, bools, durations and times carry no text.
		return v
	}
}

// valueOf turns a redacted plain value back into a slog.Value, keeping
// strings as strings so text handlers do not print them through fmt.
func valueOf(x any) slog.Value {
	if s, ok := x.(string); ok {
		return slog.StringValue(s)
	}
	return slog.AnyValue(x)
}

// Value returns x redacted by the rules every log line follows: x is first
// rendered to JSON-like data (map[string]any, []any, string, json.Number,
// bool, nil), then personal and credential keys and personal-shaped strings
// are replaced by [Redacted]. The export uses it for redacted payloads.
func Value(x any) any { return redactAny(x, 0) }

// redactAny renders x as JSON-like data (map[string]any, []any, string,
// json.Number, bool, nil) and redacts it. Rendering first means the same
// key rules apply to a struct's JSON field names, a map's keys and an
// http.Header's canonical names, and whatever the handler does with the
// result later cannot reach the original value's fields or methods.
func redactAny(x any, depth int) any {
	if depth >= maxDepth {
		return Redacted
	}
	switch t := x.(type) {
	case nil:
		return nil
	case error:
		// Before the marshaling cases: most error types marshal to {},
		// which would lose the message an operator needs.
		return SafeError(t)
	case string:
		return maskString(t)
	case []byte:
		// json.Marshal would turn bytes into base64, hiding the content
		// from the masks but not from anyone who decodes it.
		return maskString(string(t))
	case json.RawMessage:
		return maskString(string(t))
	case json.Number, bool:
		return t
	case float64:
		// encoding/json decodes every number into a float64; text
		// handlers would print a unix-ms timestamp as 1.654012591514e+12.
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t)
		}
		return t
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[uniqueKey(out, maskString(k))] = redactField(k, v, depth)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = redactAny(v, depth+1)
		}
		return out
	case json.Marshaler, encoding.TextMarshaler:
		return redactMarshaled(t, depth)
	}
	switch rv := reflect.ValueOf(x); rv.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return x
	case reflect.String:
		return maskString(rv.String())
	}
	return redactMarshaled(x, depth)
}

// redactField redacts a map member, where the key decides first.
func redactField(key string, v any, depth int) any {
	switch keySensitivity(key) {
	case personal:
		return Redacted
	case credential:
		if _, ok := v.(bool); !ok {
			return Redacted
		}
	}
	if isIDKey(key) {
		// A string, or a header's list of values.
		switch t := v.(type) {
		case string:
			return maskID(t)
		case []any:
			out := make([]any, len(t))
			for i, e := range t {
				if str, ok := e.(string); ok {
					out[i] = maskID(str)
				} else {
					out[i] = redactAny(e, depth+2)
				}
			}
			return out
		}
	}
	return redactAny(v, depth+1)
}

// redactMarshaled takes the JSON round trip. A value that cannot be
// marshaled (a channel, a cycle) is hidden whole: printing it with fmt
// instead would show struct fields by name and value.
func redactMarshaled(x any, depth int) any {
	data, err := json.Marshal(x)
	if err != nil {
		return Redacted
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var plain any
	if err := dec.Decode(&plain); err != nil {
		return Redacted
	}
	return redactAny(plain, depth)
}

// uniqueKey keeps two map keys that mask to the same text (two email
// addresses used as keys) from overwriting each other.
func uniqueKey(m map[string]any, key string) string {
	if _, taken := m[key]; !taken {
		return key
	}
	for n := 2; ; n++ {
		candidate := key + "#" + strconv.Itoa(n)
		if _, taken := m[candidate]; !taken {
			return candidate
		}
	}
}

// tintColor recognises a value wrapped by tint.Attr or tint.Err. tint
// keeps the wrapper type unexported, so it is found by its package path
// and its exported Color field; if tint changes that type the colour is
// dropped and the value is still redacted.
func tintColor(v slog.Value) (uint8, bool) {
	if v.Kind() != slog.KindLogValuer {
		return 0, false
	}
	rv := reflect.ValueOf(v.LogValuer())
	if rv.Kind() != reflect.Struct || rv.Type().PkgPath() != "github.com/lmittmann/tint" {
		return 0, false
	}
	color := rv.FieldByName("Color")
	if !color.IsValid() || color.Kind() != reflect.Uint8 {
		return 0, false
	}
	return uint8(color.Uint()), true
}
