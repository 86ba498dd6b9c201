package redact

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Redacted replaces every hidden value and substring. It is a fixed marker,
// not an empty string, so a reader can tell "there was something here"
// from "the field was empty", and so tests and log searches can find it.
const Redacted = "[REDACTED]"

// sensitivity says how a key's value must be treated.
type sensitivity int

const (
	visible sensitivity = iota
	// credential keys are matched by fragment (anything mentioning a
	// password or token). Many such keys are feature flags
	// (password_enabled), and a bool cannot carry a secret, so bools under
	// credential keys stay visible.
	credential
	// personal keys hide their value whatever its type.
	personal
)

// visibleKeys are the identifiers an operator needs to find an event. None
// of them matches a rule below today; listing them keeps it that way when
// the rules grow.
var visibleKeys = setOf(
	"clerkid", "userid", "subjectid", "svixid", "svixtimestamp",
	"eventtype", "errorid", "instanceid", "remoteaddr", "requestid",
	"primaryemailaddressid", "primaryphonenumberid", "primaryweb3walletid",
)

// personalKeys match a whole normalised key.
var personalKeys = setOf(
	"name", "nickname", "gender", "birthdate", "dob", "ssn",
	"ip", "clientip", "sourceip", "remoteip", "userip", "xforwardedfor", "xrealip", "forwarded",
	"address", "streetaddress", "homeaddress", "mailingaddress", "billingaddress", "shippingaddress",
	"city", "postalcode", "zip", "zipcode",
	"web3wallet", "web3wallets", "identifier", "provideruserid",
	"signature", "svixsignature", "webhooksignature", "authorization", "proxyauthorization",
)

// personalSuffixes match the end of a normalised key, so that
// primary_email, billing_phone_number, profile_image_url or
// public_metadata are caught without listing every variant. Metadata is
// free-form (Clerk lets applications store anything there), so it is
// hidden whole.
var personalSuffixes = []string{
	"email", "emails", "emailaddress", "emailaddresses",
	"phone", "phones", "phonenumber", "phonenumbers",
	"firstname", "lastname", "middlename", "fullname", "displayname", "username",
	"birthday", "dateofbirth", "ipaddress", "useragent",
	"metadata", "imageurl", "avatarurl", "externalid",
}

// credentialFragments match anywhere in a normalised key.
var credentialFragments = []string{
	"secret", "password", "passwd", "token", "apikey", "privatekey", "credential", "cookie",
}

func setOf(keys ...string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// keySensitivity classifies an attribute or map key. A dotted key
// (private_metadata.plan) is sensitive when any of its segments is, because
// callers sometimes flatten a path into one key.
func keySensitivity(key string) sensitivity {
	worst := visible
	for seg := range strings.SplitSeq(key, ".") {
		if s := segmentSensitivity(normalizeKey(seg)); s > worst {
			worst = s
		}
	}
	return worst
}

func segmentSensitivity(k string) sensitivity {
	if k == "" || visibleKeys[k] {
		return visible
	}
	if personalKeys[k] {
		return personal
	}
	for _, suffix := range personalSuffixes {
		if strings.HasSuffix(k, suffix) {
			return personal
		}
	}
	for _, fragment := range credentialFragments {
		if strings.Contains(k, fragment) {
			return credential
		}
	}
	return visible
}

// normalizeKey folds the spellings that reach us (Clerk's snake_case, HTTP
// header Kebab-Case, Go CamelCase, someone's SCREAMING_CASE) into one form.
func normalizeKey(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	for _, r := range k {
		switch r {
		case '-', '_', ' ':
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

var (
	// Local part and domain accept letters of any script: internationalised
	// addresses are personal data too. %40 is a URL-encoded '@', as found in
	// logged query strings.
	emailPattern = regexp.MustCompile(`[\p{L}\p{N}._%+\-]+(?:@|%40)[\p{L}\p{N}\-]+(?:\.[\p{L}\p{N}\-]+)*\.\p{L}{2,}`)

	// userinfo in a URL (postgres://user:password@host) is a credential.
	urlUserinfoPattern = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@`)

	// "Bearer <token>" and "password=...", "db_token: ..." pairs inside
	// free text, e.g. a connection string or a quoted header in an error.
	// The keyword may end a longer word (db_password=), so no \b before it.
	bearerPattern       = regexp.MustCompile(`(?i)\b(bearer)\s+([A-Za-z0-9._~+/\-]+=*)`)
	secretAssignPattern = regexp.MustCompile(`(?i)((?:secret|password|passwd|token|api[_\-]?key|signature|authorization)[A-Za-z_\-]*\s*[=:]\s*"?)[^\s&"';]+`)

	// International numbers: '+', a country code (never starting with 0),
	// then digits, spaces, dashes, dots or parentheses. isIntlPhone
	// enforces the digit count.
	intlPhonePattern = regexp.MustCompile(`\B(\+[1-9][0-9 ().\-]{6,}[0-9])` + phoneEnd)

	// National numbers need separators: (555) 123-4567, 555-123-4567,
	// 555.123.4567, 020 7946 0958. Bare digit runs are never treated as
	// phones because unix timestamps (1716883200, 1654012591514) and
	// numeric ids are bare digit runs too.
	localPhonePattern = regexp.MustCompile(`(\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]\d{3,4}|\b\d{2,5}[ \-]\d{3,4}[ \-]\d{3,4}|\b\d{3}\.\d{3}\.\d{4})` + phoneEnd)
)

// phoneEnd follows each phone pattern, which captures the number in group
// 1: Go's regexp has no look-ahead, so the right-hand boundary is matched
// (and consumed) instead. It is the end, a character that cannot continue
// a token, or a dash or dot that ends a sentence rather than joining the
// next UUID group or version part. On the left, \b keeps digits glued to
// an id (ERR_1757344458980_abc, a UUID's inner groups) out.
const phoneEnd = `(?:$|[^\w\-.]|[\-.](?:$|[^\w]))`

// maxStringLen bounds the text that is scanned. No legitimate log string
// comes near it (a long one is a body someone logged by mistake), and
// scanning costs time per byte, so an attacker who can get a header or a
// field into a log line must not choose how long the scan takes. Cutting
// the string instead could leave half an email or phone number that no
// longer matches its pattern, so a string over the limit is hidden whole.
const maxStringLen = 32 << 10

// maskString hides the personal data and credentials that can be
// recognised by shape. Each pass runs only if a cheap check says it could
// match, because most log strings (ids, paths, event types) contain none.
func maskString(s string) string {
	if s == "" || s == Redacted {
		return s
	}
	if len(s) > maxStringLen {
		return Redacted + " (" + strconv.Itoa(len(s)) + " bytes)"
	}
	if strings.ContainsAny(s, "{[") {
		s = maskJSONFragments(s)
	}
	if strings.Contains(s, "://") {
		s = urlUserinfoPattern.ReplaceAllString(s, "${1}"+Redacted+"@")
	}
	if strings.Contains(s, "earer") || strings.Contains(s, "EARER") {
		s = replaceBearerTokens(s)
	}
	if strings.ContainsAny(s, "=:") {
		s = secretAssignPattern.ReplaceAllString(s, "${1}"+Redacted)
	}
	if strings.Contains(s, "@") || strings.Contains(s, "%40") {
		s = emailPattern.ReplaceAllString(s, Redacted)
	}
	if countDigits(s) >= 8 {
		s = replacePhones(s, intlPhonePattern, isIntlPhone)
		s = replacePhones(s, localPhonePattern, func(string) bool { return true })
	}
	return s
}

// SafeError returns err's text fit for a log line, an error response or a
// database column: emails, phone numbers and credentials are masked, and
// any JSON object or array it quotes (a decoder error that echoes the
// body, an upstream API's error payload) is replaced whole, because a name
// inside JSON cannot be told from any other string. A nil error gives "".
func SafeError(err error) string {
	if err == nil {
		return ""
	}
	return maskString(err.Error())
}

// replaceBearerTokens hides the token after "Bearer". A token is long and
// not a plain word, which keeps prose such as "missing bearer
// authentication" readable.
func replaceBearerTokens(s string) string {
	return bearerPattern.ReplaceAllStringFunc(s, func(m string) string {
		parts := bearerPattern.FindStringSubmatch(m)
		token := parts[2]
		if len(token) < 8 || strings.IndexFunc(token, func(r rune) bool { return !unicode.IsLetter(r) }) < 0 {
			return m
		}
		return parts[1] + " " + Redacted
	})
}

func countDigits(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n
}

// replacePhones replaces group 1 of every match that accept approves.
// A match also consumes the character after the number, which may be
// where the next number starts ("555-123-4567(555) 765-4321"), so the
// pass is repeated while it finds something; each round removes digits,
// so this ends quickly. One FindAll per round keeps the work linear.
//
// An underscore counts as a separator, like a space: the patterns run on a
// copy of s with every '_' made a ' ' (same length, so the indices hold).
// Otherwise a number glued to an id by '_' (an attacker's svix-id
// msg_+14155550123, msg_415-555-0123) would have no boundary before it.
func replacePhones(s string, re *regexp.Regexp, accept func(string) bool) string {
	for range 4 {
		var b strings.Builder
		last := 0
		for _, m := range re.FindAllStringSubmatchIndex(strings.ReplaceAll(s, "_", " "), -1) {
			start, end := m[2], m[3]
			if !accept(s[start:end]) {
				continue
			}
			b.WriteString(s[last:start])
			b.WriteString(Redacted)
			last = end
		}
		if last == 0 {
			return s
		}
		b.WriteString(s[last:])
		s = b.String()
	}
	return s
}

// isIntlPhone checks a '+' candidate: E.164 allows at most 15 digits, but
// a longer run after '+' is hidden too (fail closed). Dots are accepted
// only as group separators (+1.555.123.4567), so that a decimal such as
// Go's monotonic clock reading "m=+1.234567890" is left alone.
func isIntlPhone(candidate string) bool {
	if countDigits(candidate) < 8 {
		return false
	}
	if !strings.Contains(candidate, ".") {
		return true
	}
	groups := strings.FieldsFunc(candidate[1:], func(r rune) bool {
		return r == ' ' || r == '.' || r == '-' || r == '(' || r == ')'
	})
	for _, g := range groups[1:] {
		if len(g) > 4 {
			return false
		}
	}
	return true
}

// maskJSONFragments replaces every JSON object or array embedded in s,
// including JSON that was escaped once more (a %q-quoted body reads
// {\"first_name\":\"Ann\"}). A fragment that never closes, as in a
// truncated body, is hidden up to the end of s. Only text that starts like
// JSON with string keys or string/object elements counts, so Go's own
// formatting ([1 2 3], {Name:x}) and "[REDACTED]" itself are left alone.
func maskJSONFragments(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '{' && s[i] != '[' {
			continue
		}
		escaped, ok := jsonStartsAt(s, i)
		if !ok {
			continue
		}
		end := jsonFragmentEnd(s, i, escaped)
		b.WriteString(s[last:i])
		b.WriteString(Redacted)
		last = end
		i = end - 1
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// jsonStartsAt reports whether an object or array that holds strings or
// objects starts at s[i], and whether its quotes are backslash-escaped.
// Nested openings ([[{"a") are followed up to a fixed depth, which keeps
// the work linear on adversarial input such as a long run of '['.
func jsonStartsAt(s string, i int) (escaped, ok bool) {
	for range 32 {
		open := s[i]
		j := skipSpace(s, i+1)
		if j >= len(s) {
			return false, false
		}
		switch {
		case s[j] == '"':
			return false, true
		case s[j] == '\\' && j+1 < len(s) && s[j+1] == '"':
			return true, true
		case open == '[' && (s[j] == '{' || s[j] == '['):
			i = j
			continue
		}
		return false, false
	}
	return false, false
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// jsonFragmentEnd returns the index just past the bracket that closes the
// one at s[start], or len(s) if none does. Brackets inside JSON strings do
// not count. In escaped text, \" is a quote and \\ a backslash of the
// original JSON.
func jsonFragmentEnd(s string, start int, escaped bool) int {
	depth := 0
	inString, skipNext := false, false
	for i := start; i < len(s); {
		c, width := s[i], 1
		if escaped && c == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			c, width = s[i+1], 2
		}
		i += width
		switch {
		case skipNext:
			skipNext = false
		case inString && c == '\\':
			skipNext = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// idKeys name values that are identifiers a sender chooses: svix-id and
// webhook-id headers, Clerk's data.id. They stay visible (an operator
// needs them to find an event), but a sender can put anything there.
var idKeys = setOf("svixid", "webhookid", "clerkid", "subjectid", "userid", "dataid", "id", "messageid", "msgid")

// isIDKey reports whether key (any spelling, see normalizeKey) names a
// sender-chosen identifier.
func isIDKey(key string) bool { return idKeys[normalizeKey(key)] }

// bareNumberSegment is an id segment that is only a long number: eight or
// more digits, possibly after a '+'.
var bareNumberSegment = regexp.MustCompile(`^\+?[0-9]{8,}$`)

// maskID masks an identifier. Besides what maskString hides anywhere
// (email- and phone-shaped text, '_' counting as a separator), a segment
// between underscores that is only a long number is hidden: real ids
// (Svix's msg_ and Clerk's user_ followed by 27 base62 characters,
// webhookd's whd_ and 32 hex digits) never have one, while a phone number
// written without separators (msg_14155550123) is exactly that. In free
// text such digit runs stay visible, because timestamps look the same.
func maskID(s string) string {
	s = maskString(s)
	if countDigits(s) < 8 {
		return s
	}
	segments := strings.Split(s, "_")
	for i, seg := range segments {
		if bareNumberSegment.MatchString(seg) {
			segments[i] = Redacted
		}
	}
	return strings.Join(segments, "_")
}
