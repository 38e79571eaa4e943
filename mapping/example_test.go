package mapping_test

import (
	"errors"
	"fmt"

	"stox.dev/stox/mapping"
)

var exampleDomains = mapping.Domains{XMPP: "sip.gw.example", SIP: "sip.example"}

func ExampleEscapeLocal() {
	fmt.Println(mapping.EscapeLocal("d'artagnan"))
	fmt.Println(mapping.EscapeLocal(`c:\5commas`))
	fmt.Println(mapping.UnescapeLocal(`at\26t\20guy`))
	fmt.Println(mapping.UnescapeLocal(`foob\41r`)) // not one of the ten: unchanged
	// Output:
	// d\27artagnan
	// c\3a\5c5commas
	// at&t guy
	// foob\41r
}

func ExampleDomains_SIPTarget() {
	for _, s := range []string{"bob@sip.gw.example", `bob\40sip.other@sip.gw.example`, `o\27malley@sip.gw.example/desk`} {
		to, _ := mapping.ParseJID(s)
		u, err := exampleDomains.SIPTarget(to)
		fmt.Println(u, err)
	}
	_, err := exampleDomains.SIPTarget(mapping.JID{Local: "bob", Domain: "elsewhere.example"})
	fmt.Println(err)
	// Output:
	// sip:bob@sip.example <nil>
	// sip:bob@sip.other <nil>
	// sip:o'malley@sip.example;gr=desk <nil>
	// item-not-found: not an address of sip.gw.example
}

func ExampleDomains_XMPPTarget() {
	for _, s := range []string{"sip:alice@xmpp.example", "sip:alice%40xmpp.example@sip.example", "sip:o'malley@xmpp.example;gr=phone", "sip:bob@sip.example", "sips:alice@xmpp.example"} {
		u, _ := mapping.ParseURI(s)
		j, err := exampleDomains.XMPPTarget(u)
		var f *mapping.Failure
		if errors.As(err, &f) {
			fmt.Println(f.Status, f.Condition)
			continue
		}
		fmt.Println(j)
	}
	// Output:
	// alice@xmpp.example
	// alice@xmpp.example
	// o\27malley@xmpp.example/phone
	// 404 item-not-found
	// 403 forbidden
}

func ExampleStatusForCondition() {
	fmt.Println(mapping.StatusForCondition(mapping.ItemNotFound, true, false))
	fmt.Println(mapping.StatusForCondition(mapping.ItemNotFound, false, false))
	fmt.Println(mapping.StatusForCondition(mapping.Gone, false, true))
	fmt.Println(mapping.StatusForCondition(mapping.ServiceUnavailable, false, false))
	// Output:
	// 404
	// 604
	// 301
	// 403
}

func ExampleConditionForStatus() {
	for _, status := range []int{486, 301, 503, 422, 699} {
		c := mapping.ConditionForStatus(status)
		fmt.Println(status, c, mapping.ErrorType(c))
	}
	// Output:
	// 486 recipient-unavailable wait
	// 301 gone cancel
	// 503 internal-server-error cancel
	// 422 bad-request modify
	// 699 recipient-unavailable wait
}

func ExampleDomains_MessageToSIP() {
	from, _ := mapping.ParseJID("juliet@example.com/balcony")
	to, _ := mapping.ParseJID("romeo@sip.gw.example")
	s, err := exampleDomains.MessageToSIP(mapping.XMPPMessage{
		From: from, To: to, Type: "chat", Lang: "en",
		Body: "Wherefore art thou?", Subject: "Hi\r\nVia: evil", Thread: "t 1",
	})
	fmt.Println(err)
	fmt.Println("Request-URI:", s.RequestURI)
	fmt.Println("From:", s.From)
	fmt.Printf("Call-ID: %s\nSubject: %s\nContent-Type: %s\nContent-Language: %s\n\n%s\n",
		s.CallID, s.Subject, s.ContentType, s.ContentLanguage, s.Body)
	// Output:
	// <nil>
	// Request-URI: sip:romeo@sip.example
	// From: sip:juliet@example.com;gr=balcony
	// Call-ID: t%201
	// Subject: Hi Via: evil
	// Content-Type: text/plain;charset=UTF-8
	// Content-Language: en
	//
	// Wherefore art thou?
}

func ExampleDomains_MessageToXMPP() {
	ruri, _ := mapping.ParseURI("sip:juliet%40example.com@sip.example")
	from, _ := mapping.ParseURI("sip:romeo@sip.other;gr=urn:uuid:f81d4fae")
	m, err := exampleDomains.MessageToXMPP(mapping.SIPMessage{
		RequestURI: ruri, From: from, To: ruri, CallID: "a84b4c76e66710",
		ContentType: "text/plain;charset=UTF-8", ContentLanguage: "en",
		Body: []byte("Neither, fair saint."),
	})
	fmt.Println(err)
	fmt.Printf("<message from='%s' to='%s' type='%s' xml:lang='%s'>\n  <body>%s</body>\n  <thread>%s</thread>\n</message>\n",
		m.From, m.To, m.Type, m.Lang, m.Body, m.Thread)
	// Output:
	// <nil>
	// <message from='romeo\40sip.other@sip.gw.example/urn:uuid:f81d4fae' to='juliet@example.com' type='normal' xml:lang='en'>
	//   <body>Neither, fair saint.</body>
	//   <thread>a84b4c76e66710</thread>
	// </message>
}

func ExampleParseCPIM() {
	c, err := mapping.ParseCPIM([]byte("From: MR SANDERS <im:piglet@100akerwood.com>\r\n" +
		"To: Depressed Donkey <im:eeyore@100akerwood.com>\r\n" +
		"Subject: the weather will be fine today\r\n" +
		"\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Here is the text of my message."))
	fmt.Println(err)
	fmt.Println(c.Headers["From"][0])
	fmt.Println(c.Headers["Subject"][0])
	fmt.Println(c.ContentType)
	fmt.Println(string(c.Body))
	// Output:
	// <nil>
	// MR SANDERS <im:piglet@100akerwood.com>
	// the weather will be fine today
	// text/plain; charset=utf-8
	// Here is the text of my message.
}
