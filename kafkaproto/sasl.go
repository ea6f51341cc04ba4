package kafkaproto

import (
	"bytes"
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL (KIP-43, KIP-152): with Config.Authenticate (PLAIN) or
// Config.SCRAMPassword (SCRAM-SHA-256/512, scram.go) set, a connection
// must authenticate — SaslHandshake v1 naming a mechanism turned on,
// then SaslAuthenticate, once for PLAIN's user and password, twice for
// SCRAM — before any request but ApiVersions; anything else first is
// logged and the connection closed, as Kafka does. PLAIN sends the
// password in the clear: use it over TLS.

const (
	saslHandshakeKey    = 17
	saslAuthenticateKey = 36

	errSASLAuthenticationFailed int16 = 58
	errUnsupportedSASLMechanism int16 = 33
	errIllegalSASLState         int16 = 34

	// maxUnauthenticatedBytes bounds a request frame before the
	// connection authenticated, as Kafka's sasl.server.max.receive.size.
	maxUnauthenticatedBytes = 512 << 10
)

// saslVersions are served only when Config.Authenticate is set.
// SaslHandshake v0 is advertised because librdkafka looks for it, but a
// v0 client's raw token that follows it (rather than SaslAuthenticate,
// which every client since Kafka 1.0 uses) is not a request, and ends
// the connection.
var saslVersions = []struct{ key, min, max int16 }{
	{saslHandshakeKey, 0, 1},
	{saslAuthenticateKey, 0, 2}, // v2 flexible
}

// sasl reports whether connections must authenticate.
func (c Config) sasl() bool { return c.Authenticate != nil || c.SCRAMPassword != nil }

// mechanisms lists the SASL mechanisms c turns on.
func (c Config) mechanisms() []string {
	var out []string
	if c.Authenticate != nil {
		out = append(out, "PLAIN")
	}
	if c.SCRAMPassword != nil {
		for _, m := range scramMechanisms {
			out = append(out, m.name)
		}
	}
	return out
}

// mayServe reports whether a request of key may be answered on c now.
func (c *conn) mayServe(key int16) bool {
	return !c.srv.cfg.sasl() || c.authed.Load() ||
		key == apiVersionsKey || key == saslHandshakeKey || key == saslAuthenticateKey
}

func (h *handler) saslHandshake(req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = h.srv.cfg.mechanisms()
	switch {
	case !h.srv.cfg.sasl():
		resp.ErrorCode, resp.SupportedMechanisms = errUnsupportedSASLMechanism, nil
	case !slices.Contains(resp.SupportedMechanisms, req.Mechanism):
		resp.ErrorCode = errUnsupportedSASLMechanism
	case h.conn.authed.Load() || h.conn.saslMech != "":
		resp.ErrorCode = errIllegalSASLState
	default:
		h.conn.saslMech = req.Mechanism
	}
	return resp
}

func (h *handler) saslAuthenticate(_ context.Context, req *kmsg.SASLAuthenticateRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if h.conn.saslMech == "" || h.conn.authed.Load() {
		resp.ErrorCode = errIllegalSASLState
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate without a SaslHandshake first")
		h.conn.closeAfter = true
		return resp
	}
	fail := func(user string, err error) kmsg.Response {
		h.conn.log.Warn("kafka authentication failed; closing the connection", "mechanism", h.conn.saslMech, "user", user, "error", err)
		resp.ErrorCode = errSASLAuthenticationFailed
		resp.ErrorMessage = kmsg.StringPtr("authentication failed: " + err.Error())
		h.conn.closeAfter = true
		return resp
	}
	if mech, ok := findSCRAM(h.conn.saslMech); ok {
		if h.conn.scram == nil {
			st, out, err := h.srv.scramFirst(mech, req.SASLAuthBytes)
			if err != nil {
				return fail("", err)
			}
			h.conn.scram, resp.SASLAuthBytes = st, out
			return resp
		}
		st := h.conn.scram
		out, err := st.final(req.SASLAuthBytes)
		if err != nil {
			return fail(st.user, err)
		}
		h.conn.scram = nil
		h.conn.authed.Store(true)
		h.conn.log = h.conn.log.With("user", st.user)
		resp.SASLAuthBytes = out
		return resp
	}
	// PLAIN's message: authzid NUL authcid NUL password (RFC 4616).
	parts := bytes.Split(req.SASLAuthBytes, []byte{0})
	ok := len(parts) == 3 && len(parts[1]) > 0 &&
		(len(parts[0]) == 0 || bytes.Equal(parts[0], parts[1])) &&
		h.srv.cfg.Authenticate(string(parts[1]), string(parts[2]))
	if !ok {
		user := ""
		if len(parts) == 3 {
			user = string(parts[1])
		}
		return fail(user, errAuthFailed)
	}
	h.conn.authed.Store(true)
	h.conn.log = h.conn.log.With("user", string(parts[1]))
	return resp
}
