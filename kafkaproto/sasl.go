package kafkaproto

import (
	"bytes"
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// SASL/PLAIN (KIP-43, KIP-152): with Config.Authenticate set, a
// connection must authenticate — SaslHandshake v1 naming PLAIN, then
// SaslAuthenticate with the user and password — before any request but
// ApiVersions; anything else first is logged and the connection closed,
// as Kafka does. PLAIN sends the password in the clear: use it over TLS.

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

// mayServe reports whether a request of key may be answered on c now.
func (c *conn) mayServe(key int16) bool {
	return c.srv.cfg.Authenticate == nil || c.authed.Load() ||
		key == apiVersionsKey || key == saslHandshakeKey || key == saslAuthenticateKey
}

func (h *handler) saslHandshake(req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	resp.SupportedMechanisms = []string{"PLAIN"}
	switch {
	case h.srv.cfg.Authenticate == nil:
		resp.ErrorCode, resp.SupportedMechanisms = errUnsupportedSASLMechanism, nil
	case req.Mechanism != "PLAIN":
		resp.ErrorCode = errUnsupportedSASLMechanism
	case h.conn.authed.Load():
		resp.ErrorCode = errIllegalSASLState
	default:
		h.conn.saslStarted = true
	}
	return resp
}

func (h *handler) saslAuthenticate(_ context.Context, req *kmsg.SASLAuthenticateRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	if !h.conn.saslStarted || h.conn.authed.Load() {
		resp.ErrorCode = errIllegalSASLState
		resp.ErrorMessage = kmsg.StringPtr("SaslAuthenticate without a SaslHandshake for PLAIN first")
		h.conn.closeAfter = true
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
		h.conn.log.Warn("kafka authentication failed; closing the connection", "user", user)
		resp.ErrorCode = errSASLAuthenticationFailed
		resp.ErrorMessage = kmsg.StringPtr("authentication failed: bad user name or password")
		h.conn.closeAfter = true
		return resp
	}
	h.conn.authed.Store(true)
	h.conn.log = h.conn.log.With("user", string(parts[1]))
	return resp
}
