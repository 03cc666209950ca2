{{/* Shared pieces of the two webhook configurations. */}}

{{/* kube-system and our own namespace are never sent to the webhook: no deadlock when our own
pods (or the control plane's) restart while the webhook is down. The control plane sets
kubernetes.io/metadata.name on every namespace, so users cannot spoof their way out of it. */}}
{{- define "inferplane.webhook.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- toYaml (uniq (concat (list "kube-system" .Release.Namespace) .Values.webhook.excludedNamespaces)) | nindent 6 }}
{{- end }}

{{- define "inferplane.webhook.clientConfig" -}}
service:
  name: {{ include "inferplane.webhook.serviceName" .root }}
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
  port: 443
{{- if not (include "inferplane.tls.certManager" .root) }}
{{- include "inferplane.tls.generate" .root }}
caBundle: {{ .root.Values.__inferplaneTLS.ca.Cert | b64enc }}
{{- end }}
{{- end }}

{{- define "inferplane.webhook.annotations" -}}
{{- if include "inferplane.tls.certManager" . }}
annotations:
  # cainjector copies the CA of this Certificate into every caBundle below.
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "inferplane.fullname" . }}-webhook
{{- end }}
{{- end }}
