package kafkaproto

import (
	"strings"
	"testing"
)

// TestSCRAMMalformed: client messages that do not follow RFC 5802 are
// refused with an error (the connection is then closed), never a panic.
func TestSCRAMMalformed(t *testing.T) {
	srv := &server{cfg: Config{SCRAMPassword: func(string) (string, bool) { return "pw", true }}}
	mech, _ := findSCRAM("SCRAM-SHA-256")
	for _, first := range []string{"", "n", "p=tls-unique,,n=u,r=x", "n,,", "n,,n=u", "n,,n=,r=x", "n,,n=u,r=", "n,,n=a=1,r=x", "n,a=v,n=u,r=x"} {
		if _, _, err := srv.scramFirst(mech, []byte(first)); err == nil {
			t.Errorf("client-first %q accepted", first)
		}
	}
	st, out, err := srv.scramFirst(mech, []byte("n,,n=u=2C=3D,r=abc"))
	if err != nil || st.user != "u,=" || !strings.HasPrefix(string(out), "r=abc") {
		t.Fatalf("client-first: %+v %q %v", st, out, err)
	}
	for _, final := range []string{"", "c=biws", "c=biws,r=" + st.nonce + ",p=", "c=biws,r=other,p=AAAA",
		"c=eSws,r=" + st.nonce + ",p=AAAA", "c=biws,r=" + st.nonce + ",p=" + strings.Repeat("A", 44)} {
		if _, err := st.final([]byte(final)); err == nil {
			t.Errorf("client-final %q accepted", final)
		}
	}
}
