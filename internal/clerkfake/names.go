package clerkfake

import (
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"
	"unicode"
)

// Built-in names. Some are not ASCII on purpose: the raw body must survive
// byte for byte, and the local part of an email is the ASCII folding.
var (
	firstNames = []string{
		"Zoë", "José", "Amelia", "Noah", "Aarav", "Mei", "Olivia", "Liam",
		"Søren", "Chloé", "Mateo", "Fatima", "Hiroshi", "Ngozi", "Priya",
		"Lukas", "Sofía", "Ewan", "Ana", "Björn", "Grace", "Omar", "Léa", "Ravi",
	}
	lastNames = []string{
		"Ångström", "Müller", "García", "Nguyen", "O'Brien", "Smith",
		"Kowalski", "Okafor", "Tanaka", "Dubois", "Rossi", "Hernández",
		"Johansson", "Patel", "Kim", "Novák", "Silva", "Cohen", "Schmidt",
		"Łukasik", "Moreau", "Andersen", "Haddad", "Brown",
	}
	orgNames = []string{
		"Acme Health", "Northwind Clinic", "Lakeside Pediatrics",
		"Mercy Family Practice", "Zoë's Dental Care", "Clínica São José",
		"Riverbend Physical Therapy", "Harbor Dermatology", "Fjällbacka Vård",
		"Cedar Grove Cardiology",
	}
	// emailDomains are reserved for documentation (RFC 2606): nothing is
	// ever delivered to them.
	emailDomains = []string{"example.com", "example.org", "example.net"}
	// clientIPs are documentation addresses (RFC 5737, RFC 3849).
	clientIPs = []string{
		"192.0.2.%d", "198.51.100.%d", "203.0.113.%d", "2001:db8::%x",
	}
	userAgents = []string{
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:129.0) Gecko/20100101 Firefox/129.0",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Mobile Safari/537.36",
	}
	cities = []struct{ city, country string }{
		{"San Francisco", "US"}, {"Berlin", "DE"}, {"São Paulo", "BR"},
		{"Tokyo", "JP"}, {"Lagos", "NG"}, {"Stockholm", "SE"}, {"Montréal", "CA"},
	}
)

func pick[T any](r *mrand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// fold maps a name to lowercase ASCII letters and digits for an email's
// local part or a slug: "Ångström" → "angstrom", "O'Brien" → "obrien".
func fold(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if f, ok := asciiFold[c]; ok {
			b.WriteString(f)
			continue
		}
		if c < unicode.MaxASCII && (unicode.IsLetter(c) || unicode.IsDigit(c)) {
			b.WriteRune(c)
		}
	}
	return b.String()
}

var asciiFold = map[rune]string{
	'à': "a", 'á': "a", 'â': "a", 'ã': "a", 'ä': "a", 'å': "a", 'æ': "ae",
	'ç': "c", 'č': "c", 'è': "e", 'é': "e", 'ê': "e", 'ë': "e", 'ì': "i",
	'í': "i", 'î': "i", 'ï': "i", 'ł': "l", 'ñ': "n", 'ò': "o", 'ó': "o",
	'ô': "o", 'õ': "o", 'ö': "o", 'ø': "o", 'š': "s", 'ß': "ss", 'ù': "u",
	'ú': "u", 'û': "u", 'ü': "u", 'ý': "y", 'ž': "z",
}

// slugify turns a name into a Clerk organization slug: "Zoë's Dental Care"
// → "zoes-dental-care".
func slugify(s string) string {
	words := strings.Fields(s)
	for i, w := range words {
		words[i] = fold(w)
	}
	return strings.Join(words, "-")
}

// person is the human behind a user payload; every field comes from one
// generator so that a seeded user looks the same in every event.
type person struct {
	first, last string
	username    string
	emails      [2]string
	emailIDs    [2]string
	primary     int // index into emails
	phone       string
	phoneID     string
	hasPhone    bool   // the user has phone_numbers[0]; SMS events use the phone anyway
	google      bool   // has a Google account linked to emails[1]
	googleSub   string // Google's numeric subject id
	googleID    string // external account id (idn_…)
	externalID  string
	hasImage    bool
}

// newPerson draws a person from r; o's overrides win. idAt is the time
// encoded in the person's identification ids.
func newPerson(r *mrand.Rand, o Options, idAt time.Time) person {
	p := person{first: pick(r, firstNames), last: pick(r, lastNames)}
	if o.FirstName != "" {
		p.first = o.FirstName
	}
	if o.LastName != "" {
		p.last = o.LastName
	}
	local := fold(p.first) + "." + fold(p.last)
	if local == "." {
		local = "user"
	}
	n := 1 + r.IntN(99_999)
	p.emails[0] = fmt.Sprintf("%s+%d@%s", local, n, pick(r, emailDomains))
	initial := fold(p.first)
	if initial != "" {
		initial = initial[:1]
	}
	p.emails[1] = fmt.Sprintf("%s%s%d@%s", initial, fold(p.last), n%1000, pick(r, emailDomains))
	if p.emails[1] == p.emails[0] {
		p.emails[1] = "alt." + p.emails[1]
	}
	// About half of all users have their second address as primary, so
	// consumers cannot assume email_addresses[0] is the primary one.
	p.primary = r.IntN(2)
	switch o.PrimaryEmail {
	case 1:
		p.primary = 0
	case 2:
		p.primary = 1
	}
	if o.Email != "" {
		p.emails[p.primary] = o.Email
	}
	p.username = fmt.Sprintf("%s_%s%d", fold(p.first), fold(p.last), r.IntN(100))
	// Fictional North American numbers (555-0100 to 555-0199).
	p.phone = fmt.Sprintf("+1%d5550%03d", 201+r.IntN(788), 100+r.IntN(100))
	p.google = r.IntN(2) == 0
	p.hasPhone = r.IntN(3) != 0
	p.googleSub = fmt.Sprintf("1%010d%010d", r.Int64N(1e10), r.Int64N(1e10))
	p.externalID = fmt.Sprintf("ext_%06d", r.IntN(1_000_000))
	p.hasImage = p.google
	p.emailIDs[0] = "idn_" + ksuid(idAt, r)
	p.emailIDs[1] = "idn_" + ksuid(idAt, r)
	p.phoneID = "idn_" + ksuid(idAt, r)
	p.googleID = "idn_" + ksuid(idAt, r)
	return p
}
