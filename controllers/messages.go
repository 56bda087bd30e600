package controllers

import (
	"errors"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// userMessage turns a reconcile error into what a condition or event may show: one line
// per failure, the API server's own reasons without the Go struct dumps some of its
// validation errors append (a refused claim update prints the whole old and new spec as
// a diff), and a hint where the fix is known.
func userMessage(err error) string {
	if err == nil {
		return ""
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var parts []string
		for _, e := range joined.Unwrap() {
			if m := userMessage(e); m != "" {
				parts = append(parts, m)
			}
		}
		return strings.Join(parts, "; ")
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return firstLine(err.Error())
	}
	st := status.Status()
	// The context the operator added around the API server's error, e.g. "apply
	// PersistentVolumeClaim NAME-files: ".
	prefix := strings.TrimSuffix(err.Error(), st.Message)
	reason := firstLine(st.Message)
	if st.Details != nil && len(st.Details.Causes) > 0 {
		var causes []string
		for _, c := range st.Details.Causes {
			msg := firstLine(c.Message)
			if c.Field != "" {
				msg = c.Field + ": " + msg
			}
			causes = append(causes, msg)
		}
		kind := st.Details.Kind
		if kind == "" {
			kind = "object"
		}
		reason = "refused by the API server: " + strings.Join(causes, ", ")
		if prefix == "" {
			reason = kind + " " + st.Details.Name + " " + reason
		}
		if kind == "PersistentVolumeClaim" && st.Reason == "Invalid" {
			reason += " (a claim's storage class and access mode cannot change once it exists: set them back, or delete the claim " +
				st.Details.Name + " so it is recreated, which deletes the files on it)"
		}
	}
	return firstLine(prefix) + reason
}

// firstLine cuts s at its first line break, trailing blanks and colons removed.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimRight(s[:i], " :")
	}
	return s
}
