// Package v1alpha1 holds the ChatCluster API: what a platform team declares to run Parley.
// It imports only the standard library, k8s.io/api and k8s.io/apimachinery, so clients
// can use it cheaply.
// +kubebuilder:object:generate=true
// +groupName=chat.parley.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "chat.parley.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &ChatCluster{}, &ChatClusterList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
