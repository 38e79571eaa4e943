package presence

// The PIDF translators live in mapping/pidf.go (RFC 8048 §6.2 and §6.3
// tables); every call site goes through these four wrappers.

import "stox.dev/stox/mapping"

func presenceToPIDF(d mapping.Domains, ps []mapping.Presence, entity mapping.URI) mapping.PIDF {
	return d.PresenceToPIDF(ps, entity)
}

func pidfToPresence(d mapping.Domains, doc mapping.PIDF, from mapping.URI, to mapping.JID) []mapping.Presence {
	return d.PIDFToPresence(doc, from, to)
}

func parsePIDF(b []byte) (mapping.PIDF, error) { return mapping.ParsePIDF(b) }

func marshalPIDF(doc mapping.PIDF) ([]byte, error) { return doc.Marshal() }
