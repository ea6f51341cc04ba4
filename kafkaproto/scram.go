package kafkaproto

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677, Kafka's
// KIP-84), with Config.SCRAMPassword: the password never crosses the
// wire, and the client checks that the server knows it too. Channel
// binding is not offered (Kafka does not either). Two SaslAuthenticate
// rounds: client-first → server-first (nonce, salt, iterations), then
// client-final (proof) → server-final (signature).

// scramIterations is the PBKDF2 iteration count offered: Kafka's
// default and RFC 7677's minimum.
const scramIterations = 4096

// scramMechanism is one SCRAM variant.
type scramMechanism struct {
	name string
	hash func() hash.Hash
}

var scramMechanisms = []scramMechanism{
	{"SCRAM-SHA-256", sha256.New},
	{"SCRAM-SHA-512", sha512.New},
}

func findSCRAM(name string) (scramMechanism, bool) {
	for _, m := range scramMechanisms {
		if m.name == name {
			return m, true
		}
	}
	return scramMechanism{}, false
}

// scramState is a connection's SCRAM exchange between its two rounds.
type scramState struct {
	mech            scramMechanism
	user            string
	salted          []byte // SaltedPassword
	nonce           string // client's and server's
	gs2             string // the client-first message's GS2 header
	clientFirstBare string
	serverFirst     string
}

// scramFirst answers a client-first message: it returns the state for
// the second round and the server-first message. A user
// Config.SCRAMPassword does not know gets a made-up salt, so that the
// failure shows only at the proof, as for a wrong password.
func (srv *server) scramFirst(mech scramMechanism, msg []byte) (*scramState, []byte, error) {
	// gs2-header: "n,," (no channel binding, no authzid) or "y,,".
	s := string(msg)
	var authzid string
	switch {
	case strings.HasPrefix(s, "n,"), strings.HasPrefix(s, "y,"):
		rest := s[2:]
		i := strings.IndexByte(rest, ',')
		if i < 0 {
			return nil, nil, errors.New("malformed client-first message")
		}
		authzid, s = rest[:i], rest[i+1:]
	default:
		return nil, nil, errors.New("channel binding is not supported")
	}
	bare := s
	gs2 := string(msg[:len(msg)-len(bare)])
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return nil, nil, errors.New("malformed client-first message")
	}
	user, err := scramName(attrs[0][2:])
	if err != nil {
		return nil, nil, err
	}
	if authzid != "" && authzid != "a="+attrs[0][2:] {
		return nil, nil, errors.New("an authorization identity other than the user is not supported")
	}
	clientNonce := attrs[1][2:]
	if clientNonce == "" {
		return nil, nil, errors.New("empty client nonce")
	}
	var random [24]byte
	rand.Read(random[:])
	salt := make([]byte, 16)
	rand.Read(salt)
	password, ok := srv.cfg.SCRAMPassword(user)
	if !ok {
		password = base64.StdEncoding.EncodeToString(random[:]) // fails the proof
	}
	salted, err := pbkdf2.Key(mech.hash, password, salt, scramIterations, mech.hash().Size())
	if err != nil {
		return nil, nil, err
	}
	st := &scramState{
		mech: mech, user: user, salted: salted,
		nonce:           clientNonce + base64.RawStdEncoding.EncodeToString(random[:]),
		gs2:             gs2,
		clientFirstBare: bare,
	}
	st.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", st.nonce, base64.StdEncoding.EncodeToString(salt), scramIterations)
	return st, []byte(st.serverFirst), nil
}

// final checks a client-final message's proof and returns the
// server-final message.
func (st *scramState) final(msg []byte) ([]byte, error) {
	s := string(msg)
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return nil, errors.New("malformed client-final message")
	}
	withoutProof, proofB64 := s[:i], s[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(st.gs2)) || attrs[1] != "r="+st.nonce {
		return nil, errors.New("client-final message does not continue the exchange")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != st.mech.hash().Size() {
		return nil, errors.New("malformed client proof")
	}
	mac := func(key []byte, data string) []byte {
		h := hmac.New(st.mech.hash, key)
		h.Write([]byte(data))
		return h.Sum(nil)
	}
	authMessage := st.clientFirstBare + "," + st.serverFirst + "," + withoutProof
	clientKey := mac(st.salted, "Client Key")
	h := st.mech.hash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	signature := mac(storedKey, authMessage)
	for i := range proof {
		proof[i] ^= signature[i] // the client key, if the proof is right
	}
	h.Reset()
	h.Write(proof)
	if subtle.ConstantTimeCompare(h.Sum(nil), storedKey) != 1 {
		return nil, errAuthFailed
	}
	serverSignature := mac(mac(st.salted, "Server Key"), authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSignature)), nil
}

var errAuthFailed = errors.New("bad user name or password")

// scramName decodes a saslname: "=2C" is a comma, "=3D" an equals sign.
func scramName(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty user name")
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] != '=':
			b.WriteByte(s[i])
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", errors.New("malformed user name")
		}
	}
	return b.String(), nil
}
