package mapping

import (
	"bytes"
	"strings"
	"testing"
)

// crlf turns the readable LF examples into the CRLF wire form.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// RFC 3862 §5.1, without the m: (SIP Content-Type) line and separator.
const rfc3862Example = `From: MR SANDERS <im:piglet@100akerwood.com>
To: Depressed Donkey <im:eeyore@100akerwood.com>
DateTime: 2000-12-13T13:40:00-08:00
Subject: the weather will be fine today
Subject:;lang=fr beau temps prevu pour aujourd'hui
NS: MyFeatures <mid:MessageFeatures@id.foo.com>
Require: MyFeatures.VitalMessageOption
MyFeatures.VitalMessageOption: Confirmation-requested
MyFeatures.WackyMessageOption: Use-silly-font

Content-type: text/xml; charset=utf-8
Content-ID: <1234567890@foo.com>

<body>
Here is the text of my message.
</body>
`

func TestParseCPIMRFCExample(t *testing.T) {
	for name, in := range map[string][]byte{"CRLF": crlf(rfc3862Example), "LF": []byte(rfc3862Example)} {
		c, err := ParseCPIM(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := c.Headers["From"]; len(got) != 1 || got[0] != "MR SANDERS <im:piglet@100akerwood.com>" {
			t.Errorf("%s: From = %q", name, got)
		}
		if got := c.Headers["Subject"]; len(got) != 2 || got[0] != "the weather will be fine today" ||
			got[1] != ";lang=fr beau temps prevu pour aujourd'hui" {
			t.Errorf("%s: Subject = %q", name, got)
		}
		if got := c.Headers["MyFeatures.WackyMessageOption"]; len(got) != 1 || got[0] != "Use-silly-font" {
			t.Errorf("%s: namespaced header = %q", name, got)
		}
		if c.ContentType != "text/xml; charset=utf-8" {
			t.Errorf("%s: ContentType = %q", name, c.ContentType)
		}
		want := "<body>\nHere is the text of my message.\n</body>\n"
		if name == "CRLF" {
			want = strings.ReplaceAll(want, "\n", "\r\n")
		}
		if string(c.Body) != want {
			t.Errorf("%s: Body = %q, want %q", name, c.Body, want)
		}
	}
}

func TestParseCPIMVariants(t *testing.T) {
	tests := []struct {
		name, in, ct, body string
	}{
		{"§2.4 example", "From: <im:a@b>\n\nContent-Type: text/plain; charset=utf-8\nContent-ID: <1234567890@foo.com>\n\nThis is my encapsulated text message content", "text/plain; charset=utf-8", "This is my encapsulated text message content"},
		{"no message headers", "\nContent-Type: text/plain\n\nhi", "text/plain", "hi"},
		{"folded content type", "From: <im:a@b>\n\ncontent-type: text/plain;\n\tcharset=utf-8\n\nhi", "text/plain; charset=utf-8", "hi"},
		{"empty content, no final blank line", "From: <im:a@b>\n\nContent-Type: text/plain\n", "text/plain", ""},
		{"empty header value", "Subject:\n\nContent-Type: text/plain\n\n", "text/plain", ""},
		{"body keeps blank lines", "\nContent-Type: text/plain\n\n\n\nx\n\n", "text/plain", "\n\nx\n\n"},
	}
	for _, tc := range tests {
		c, err := ParseCPIM([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if c.ContentType != tc.ct || string(c.Body) != tc.body {
			t.Errorf("%s: got %q / %q, want %q / %q", tc.name, c.ContentType, c.Body, tc.ct, tc.body)
		}
	}
}

func TestParseCPIMMalformed(t *testing.T) {
	for name, in := range map[string]string{
		"empty":                     "",
		"no blank line":             "From: <im:a@b>\r\nContent-Type: text/plain\r\n",
		"no MIME headers":           "From: <im:a@b>\r\n\r\n",
		"no content type":           "From: <im:a@b>\r\n\r\nContent-ID: <x>\r\n\r\nhi",
		"empty content type":        "From: <im:a@b>\r\n\r\nContent-Type:\r\n\r\nhi",
		"two content types":         "\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\nhi",
		"header without colon":      "From <im:a@b>\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"header without name":       ": x\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"space in name":             "Fr om: x\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"no space after colon":      "From:x\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"control char":              "Subject: a\x00b\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"bare CR in value":          "Subject: a\rb\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"bad UTF-8":                 "Subject: \xff\r\n\r\nContent-Type: text/plain\r\n\r\nhi",
		"MIME header without colon": "\r\nContent-Type text/plain\r\n\r\nhi",
		"leading continuation":      "\r\n continued\r\nContent-Type: text/plain\r\n\r\nhi",
		"MIME headers unterminated": "\r\nContent-Type: text/plain",
		"control in content type":   "\r\nContent-Type: text/plain\x01\r\n\r\nhi",
	} {
		if c, err := ParseCPIM([]byte(in)); err == nil {
			t.Errorf("%s: ParseCPIM(%q) = %+v, want an error", name, in, c)
		}
	}
}

// A large header block must parse in linear time; folding many lines into
// Content-Type must not be quadratic either.
func TestParseCPIMLarge(t *testing.T) {
	var b bytes.Buffer
	for i := 0; i < 50000; i++ {
		b.WriteString("X: y\r\n")
	}
	b.WriteString("\r\nContent-Type: text/plain\r\n")
	for i := 0; i < 50000; i++ {
		b.WriteString(" ;a=b\r\n")
	}
	b.WriteString("\r\nhi")
	c, err := ParseCPIM(b.Bytes())
	if err != nil || len(c.Headers["X"]) != 50000 || string(c.Body) != "hi" {
		t.Fatalf("large CPIM: %v, %d headers", err, len(c.Headers["X"]))
	}
}
