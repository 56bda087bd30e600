package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/parleychat/parley/controllers/render"
)

// CacheOptions limit what the operator holds in memory: the watched namespaces (every
// namespace when none), and of Secrets and ConfigMaps, often numerous and large, only
// the ones it made (and of Pods only the gateways'). The reconciler never reads a Secret
// it did not create.
func CacheOptions(namespaces []string) cache.Options {
	mine := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: mine},
		&corev1.ConfigMap{}: {Label: mine},
		// Pods only for the connection autoscaler: the gateways'.
		&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy, render.LabelName: "parley", render.LabelComponent: render.RoleGateway})},
	}}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}
