{{/* Names, labels, images and the security settings every container shares. */}}

{{- define "inferplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every resource name; kept short enough for the suffixes we add (-scheduler-extender...). */}}
{{- define "inferplane.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "inferplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Recommended labels. Call with (dict "root" $ "component" "webhook"). */}}
{{- define "inferplane.labels" -}}
helm.sh/chart: {{ include "inferplane.chart" .root }}
{{ include "inferplane.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: inferplane
{{- end }}

{{/* Selector labels: only the immutable ones, so upgrades never orphan pods. */}}
{{- define "inferplane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inferplane.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "inferplane.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* kube-scheduler must match the control plane's minor version; v1.<minor>.0 exists for each. */}}
{{- define "inferplane.schedulerImage" -}}
{{- $img := .Values.scheduler.image }}
{{- $minor := regexReplaceAll "[^0-9]" .Capabilities.KubeVersion.Minor "" }}
{{- printf "%s:%s" $img.repository (default (printf "v1.%s.0" $minor) $img.tag) }}
{{- end }}

{{/*
Pod Security "restricted": numeric non-root user (the kubelet can only verify a number),
RuntimeDefault seccomp. 65532 is the image's USER.
*/}}
{{- define "inferplane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "inferplane.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Spread replicas over nodes without refusing to run on a small cluster (unlike a hard
anti-affinity, which leaves pods Pending below N nodes). Call with (dict "root" $ "component" "x"). */}}
{{- define "inferplane.topologySpread" -}}
- maxSkew: 1
  topologyKey: kubernetes.io/hostname
  whenUnsatisfiable: ScheduleAnyway
  labelSelector:
    matchLabels:
      {{- include "inferplane.selectorLabels" . | nindent 6 }}
  matchLabelKeys: [pod-template-hash]
{{- end }}

{{/* Scheduling fields shared by every Deployment. Call with (dict "root" $ "values" .Values.<component>). */}}
{{- define "inferplane.podPlacement" -}}
{{- $root := .root }}
{{- with (default $root.Values.priorityClassName .values.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
{{- with (merge (dict) (.values.nodeSelector | default dict) ($root.Values.nodeSelector | default dict)) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (concat ($root.Values.tolerations | default list) (.values.tolerations | default list)) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget, only when more than one replica runs: with one replica it would
block every node drain. Call with (dict "root" $ "component" "x" "replicas" N "pdb" .Values.x.podDisruptionBudget). */}}
{{- define "inferplane.pdb" -}}
{{- if and .pdb.enabled (gt (int .replicas) 1) }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "inferplane.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "inferplane.labels" (dict "root" .root "component" .component) | nindent 4 }}
spec:
  maxUnavailable: {{ .pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "inferplane.selectorLabels" (dict "root" .root "component" .component) | nindent 6 }}
{{- end }}
{{- end }}

{{- define "inferplane.webhook.serviceName" -}}
{{ include "inferplane.fullname" . }}-webhook
{{- end }}

{{- define "inferplane.router.serviceName" -}}
{{ include "inferplane.fullname" . }}-router
{{- end }}

{{/* The annotation every model pod carries; the webhooks are scoped to it. */}}
{{- define "inferplane.modelAnnotation" -}}ml.example/model{{- end }}
