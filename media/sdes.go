package media

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/pion/srtp/v3"
	"stox.dev/stox/mapping"
)

// SDES-SRTP on the SIP leg (RFC 4568, RFC 3711): the phone's a=crypto key
// decrypts what it sends, stox's own fresh key encrypts what stox sends.
// Keys are secrets: no error, log line or String method here contains one.

// sdesSuites are the crypto suites stox accepts, in no order of its own:
// the offerer's order decides (RFC 4568 §7.1.1).
var sdesSuites = map[string]srtp.ProtectionProfile{
	"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80, // RFC 4568 §6.2.1
	"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32, // RFC 4568 §6.2.2
	"AEAD_AES_128_GCM":        srtp.ProtectionProfileAeadAes128Gcm,       // RFC 7714 §14.2
}

// srtpReplayWindow is the SRTP replay list size (RFC 3711 §3.3.2 asks for
// at least 64).
const srtpReplayWindow = 128

// sdesKey is one parsed or generated master key and salt.
type sdesKey struct {
	profile   srtp.ProtectionProfile
	key, salt []byte
}

// errCrypto is what a refused a=crypto line says; the line's key is never
// part of the message.
var errCrypto = errors.New("unusable a=crypto line")

// parseCrypto reads one a=crypto line's suite and key parameters (RFC 4568
// §9.1): a single "inline:" key (with an optional lifetime), no MKI and no
// session parameters, which stox does not implement.
func parseCrypto(cr mapping.Crypto) (sdesKey, error) {
	p, ok := sdesSuites[cr.Suite]
	if !ok {
		return sdesKey{}, fmt.Errorf("%w: suite %.40q not supported", errCrypto, cr.Suite)
	}
	if cr.Tag < 0 || cr.Tag > 999999999 { // RFC 4568 §9.1: 1*9DIGIT
		return sdesKey{}, fmt.Errorf("%w: tag %d", errCrypto, cr.Tag)
	}
	if strings.TrimSpace(cr.SessionParams) != "" {
		return sdesKey{}, fmt.Errorf("%w: session parameters not supported", errCrypto)
	}
	kp, ok := strings.CutPrefix(cr.KeyParams, "inline:")
	if !ok {
		return sdesKey{}, fmt.Errorf("%w: key method is not inline", errCrypto)
	}
	if strings.Contains(kp, ";") {
		return sdesKey{}, fmt.Errorf("%w: several keys (they need an MKI)", errCrypto)
	}
	parts := strings.Split(kp, "|")
	switch {
	case len(parts) > 3:
		return sdesKey{}, fmt.Errorf("%w: key parameters malformed", errCrypto)
	case len(parts) == 3, len(parts) == 2 && strings.Contains(parts[1], ":"):
		return sdesKey{}, fmt.Errorf("%w: MKI not supported", errCrypto)
	}
	keyLen, err := p.KeyLen()
	if err != nil {
		return sdesKey{}, err
	}
	saltLen, err := p.SaltLen()
	if err != nil {
		return sdesKey{}, err
	}
	// RFC 4568 §6.1 writes key||salt in base64; some peers leave out the
	// padding.
	raw, err := base64.StdEncoding.DecodeString(parts[0])
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(parts[0]); err != nil {
			return sdesKey{}, fmt.Errorf("%w: key is not base64", errCrypto)
		}
	}
	if len(raw) != keyLen+saltLen {
		return sdesKey{}, fmt.Errorf("%w: key is %d bytes, %s needs %d", errCrypto, len(raw), cr.Suite, keyLen+saltLen)
	}
	return sdesKey{profile: p, key: raw[:keyLen], salt: raw[keyLen:]}, nil
}

// pickCrypto returns the first line of the offer stox can use (RFC 4568
// §7.1.1: the answerer picks one and answers with its tag).
func pickCrypto(lines []mapping.Crypto) (mapping.Crypto, sdesKey, error) {
	if len(lines) == 0 {
		return mapping.Crypto{}, sdesKey{}, fmt.Errorf("%w: no a=crypto line", errCrypto)
	}
	var first error
	for _, cr := range lines {
		k, err := parseCrypto(cr)
		if err == nil {
			return cr, k, nil
		}
		if first == nil {
			first = err
		}
	}
	return mapping.Crypto{}, sdesKey{}, first
}

// newSDESKey makes a fresh random master key and salt for a suite.
func newSDESKey(p srtp.ProtectionProfile) (sdesKey, error) {
	keyLen, err := p.KeyLen()
	if err != nil {
		return sdesKey{}, err
	}
	saltLen, err := p.SaltLen()
	if err != nil {
		return sdesKey{}, err
	}
	b := make([]byte, keyLen+saltLen)
	if _, err := rand.Read(b); err != nil {
		return sdesKey{}, err
	}
	return sdesKey{profile: p, key: b[:keyLen], salt: b[keyLen:]}, nil
}

// keyParams writes the key as RFC 4568 §6.1 "inline:" key parameters.
func (k sdesKey) keyParams() string {
	b := make([]byte, 0, len(k.key)+len(k.salt))
	b = append(append(b, k.key...), k.salt...)
	return "inline:" + base64.StdEncoding.EncodeToString(b)
}

// sdesLeg is the SIP leg's SRTP state. rx is used only by the SIP reader,
// tx only under Call.toSIPMu: a pion Context is not safe for concurrent use.
type sdesLeg struct {
	rx, tx *srtp.Context
	rxBuf  []byte // decrypted packet (SIP reader)
	txBuf  []byte // encrypted packet (under toSIPMu)
}

func newRxContext(k sdesKey) (*srtp.Context, error) {
	return srtp.CreateContext(k.key, k.salt, k.profile, srtp.SRTPReplayProtection(srtpReplayWindow))
}

func newTxContext(k sdesKey) (*srtp.Context, error) {
	return srtp.CreateContext(k.key, k.salt, k.profile)
}

// isSDES says whether a SIP leg description asks for SDES-SRTP: RTP/SAVP,
// or RTP/SAVPF without a DTLS fingerprint (RFC 4568 §3.1.4, RFC 5124).
func isSDES(m mapping.Media) bool {
	return m.Profile == "RTP/SAVP" || m.Profile == "RTP/SAVPF" && m.Fingerprint == nil
}
