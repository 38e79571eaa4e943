package mapping_test

import (
	"fmt"

	"stox.dev/stox/mapping"
)

func ExampleParseURI() {
	u, err := mapping.ParseURI("sip:o%27malley@sip.example:5070;transport=tcp;gr=desk")
	fmt.Printf("%q %q %d %q %v\n", u.User, u.Host, u.Port, u.GR, err)
	fmt.Println(u.AOR())
	fmt.Println(u)
	_, err = mapping.ParseURI("sip:bob@exa mple.com")
	fmt.Println(err != nil)
	// Output:
	// "o'malley" "sip.example" 5070 "desk" <nil>
	// sip:o'malley@sip.example
	// sip:o'malley@sip.example:5070;gr=desk
	// true
}

func ExampleParseJID() {
	j, err := mapping.ParseJID(`o\27malley@sip.gw.example/desk`)
	fmt.Println(j.Local, j.Domain, j.Resource, err)
	fmt.Println(j.Bare(), j.Bare().IsZero())
	_, err = mapping.ParseJID("a@b@c")
	fmt.Println(err != nil)
	// Output:
	// o\27malley sip.gw.example desk <nil>
	// o\27malley@sip.gw.example false
	// true
}

func ExampleURIToJID() {
	u, _ := mapping.ParseURI("sip:m&m@candy.example;gr=phone")
	j, err := mapping.URIToJID(u)
	fmt.Println(j, err)
	fmt.Println(mapping.JIDToURI(j))
	// Output:
	// m\26m@candy.example/phone <nil>
	// sip:m&m@candy.example;gr=phone
}

func ExampleDomains_SIPFrom() {
	for _, s := range []string{"alice@xmpp.example/phone", "juliet@capulet.example"} {
		j, _ := mapping.ParseJID(s)
		fmt.Println(exampleDomains.SIPFrom(j))
	}
	// Output:
	// sip:alice@xmpp.example;gr=phone
	// sip:juliet@capulet.example
}

func ExampleDomains_XMPPFrom() {
	for _, s := range []string{"sip:bob@sip.example", "sip:carol@sip.other", "sip:o'malley@sip.example;gr=desk"} {
		u, _ := mapping.ParseURI(s)
		fmt.Println(exampleDomains.XMPPFrom(u))
	}
	// Output:
	// bob@sip.gw.example
	// carol\40sip.other@sip.gw.example
	// o\27malley@sip.gw.example/desk
}

func ExampleDomains_PromptToJID() {
	for _, p := range []string{"bob", "sip:carol@sip.other", "+1 (555) 010-9999", "tel:+15550109999"} {
		j, err := exampleDomains.PromptToJID(p)
		fmt.Println(j, err)
	}
	// Output:
	// bob@sip.gw.example <nil>
	// carol\40sip.other@sip.gw.example <nil>
	// +15550109999@sip.gw.example <nil>
	//  jid-malformed: only sip: addresses are accepted
}

func ExampleErrorType() {
	for _, c := range []mapping.Condition{mapping.ItemNotFound, mapping.ResourceConstraint, mapping.NotAuthorized} {
		fmt.Println(c, mapping.ErrorType(c))
	}
	// Output:
	// item-not-found cancel
	// resource-constraint wait
	// not-authorized auth
}

func ExampleFailureFromStatus() {
	f := mapping.FailureFromStatus(486, "Busy Here")
	fmt.Println(f.Condition, f.Status, f.Text)
	fmt.Println(f)
	// Output:
	// recipient-unavailable 486 Busy Here
	// recipient-unavailable: Busy Here
}

func ExampleTupleID() {
	fmt.Println(mapping.TupleID("phone"))
	fmt.Println(mapping.TupleID("Gajim 1.8"))
	// Output:
	// ID-phone
	// H-6bec659f5c961e0709319002
}
