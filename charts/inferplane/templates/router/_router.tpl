{{- define "inferplane.router.replicas" -}}
{{- if gt (int .Values.router.replicas) 0 }}{{ .Values.router.replicas }}{{ else if .Values.router.ha }}3{{ else }}1{{ end }}
{{- end }}

{{/* The Service port: 443 for HTTPS, 80 for plain HTTP, unless set. */}}
{{- define "inferplane.router.servicePort" -}}
{{- if .Values.router.service.port }}{{ .Values.router.service.port }}{{ else if include "inferplane.router.tlsEnabled" . }}443{{ else }}80{{ end }}
{{- end }}

{{- define "inferplane.router.scheme" -}}
{{- if include "inferplane.router.tlsEnabled" . }}https{{ else }}http{{ end }}
{{- end }}

{{/* The namespaces the router serves, as a JSON list; empty = every namespace. router.watchNamespace
     (one name, before watchNamespaces existed) still counts, so an upgrade with --reuse-values works. */}}
{{- define "inferplane.router.watchNamespaces" -}}
{{- $names := concat (.Values.router.watchNamespaces | default list) (compact (list (.Values.router.watchNamespace | default ""))) }}
{{- $names | uniq | toJson }}
{{- end }}
