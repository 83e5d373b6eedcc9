{{/* Names: the release name (as in deploy/kubernetes) when it contains the chart's name, else both. */}}
{{- define "llm-gateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The workload: the gateway pod (Envoy + extproc), or extproc alone in Istio mode. */}}
{{- define "llm-gateway.workload" -}}
{{- if .Values.istio.enabled -}}{{ include "llm-gateway.fullname" . }}-extproc{{- else -}}{{ include "llm-gateway.fullname" . }}{{- end -}}
{{- end -}}

{{- define "llm-gateway.component" -}}
{{- if .Values.istio.enabled -}}extproc{{- else -}}gateway{{- end -}}
{{- end -}}

{{- define "llm-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-gateway.workload" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "llm-gateway.component" . }}
{{- end -}}

{{- define "llm-gateway.labels" -}}
{{ include "llm-gateway.selectorLabels" . }}
app.kubernetes.io/part-of: llm-gateway
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "llm-gateway.policyConfigMap" -}}
{{- .Values.policy.existingConfigMap | default (printf "%s-policy" (include "llm-gateway.fullname" .)) -}}
{{- end -}}

{{- define "llm-gateway.upstreamSecret" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-upstream-keys" (include "llm-gateway.fullname" .)) -}}
{{- end -}}

{{/* The replicas the quota store shares limits over (the policy's quota.replicas). */}}
{{- define "llm-gateway.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}{{ .Values.autoscaling.minReplicas }}{{- else -}}{{ .Values.replicas }}{{- end -}}
{{- end -}}

{{/*
The policy text: the inline one, or the sample (files/policy.yaml) with its quota section switched to
redis.url when that is set (the quota section is replaced as text, so the sample's comments stay).
*/}}
{{- define "llm-gateway.policy" -}}
{{- if .Values.policy.inline -}}
{{- .Values.policy.inline -}}
{{- else -}}
{{- $sample := .Files.Get "files/policy.yaml" -}}
{{- if .Values.redis.url -}}
{{- $quota := printf "quota:\n  store: redis\n  redis: { url: %s }\n  onStoreFailure: %s\n  replicas: %s\n" (.Values.redis.url | quote) .Values.redis.onStoreFailure (include "llm-gateway.minReplicas" .) -}}
{{- $switched := regexReplaceAll "(?m)^quota:\\n(?:[ ]+\\S.*\\n)*" $sample $quota -}}
{{- if eq $switched $sample -}}{{- fail "files/policy.yaml has no top-level quota section to switch to Redis" -}}{{- end -}}
{{- $switched -}}
{{- else -}}
{{- $sample -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A container's probe: the fixed endpoint, with the timing from values. */}}
{{- define "llm-gateway.probe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{ toYaml .timing }}
{{- end -}}

{{/* The extproc container, in the gateway pod (Unix socket) or on its own for Istio (TCP :50051). */}}
{{- define "llm-gateway.extproc" -}}
{{- $v := .Values -}}
- name: extproc
  image: "{{ $v.images.extproc.repository }}:{{ $v.images.extproc.tag }}"
  imagePullPolicy: {{ $v.images.extproc.pullPolicy }}
  env:
    # Mounted as a directory (never subPath), so ConfigMap updates arrive and are hot-reloaded.
    - name: EXTPROC_POLICY
      value: /etc/llm-gateway/policy/policy.yaml
    {{- if $v.istio.enabled }}
    - name: EXTPROC_LISTEN
      value: 0.0.0.0:50051
    {{- else }}
    # The same bootstrap Envoy runs: extproc refuses a policy whose pools Envoy cannot route.
    - name: EXTPROC_ENVOY_CONFIG
      value: /etc/llm-gateway/envoy/envoy.yaml
    - name: EXTPROC_LISTEN
      value: unix:///var/run/extproc/extproc.sock
    {{- end }}
    - name: EXTPROC_METRICS_LISTEN
      value: 0.0.0.0:9464
    - name: EXTPROC_AUDIT_LOG
      value: stdout
    - name: EXTPROC_SHUTDOWN_GRACE_MS
      value: {{ ternary "270000" "20000" $v.istio.enabled | quote }}
    - name: LOG_LEVEL
      value: info
    {{- if $v.tracing.enabled }}
    {{- include "llm-gateway.checkTracing" $ }}
    - name: EXTPROC_TRACES_ENDPOINT
      value: {{ include "llm-gateway.tracesEndpoint" $ | quote }}
    {{- with $v.tracing.headersSecret }}
    - name: EXTPROC_TRACES_HEADERS
      valueFrom:
        secretKeyRef:
          name: {{ . }}
          key: headers
    {{- end }}
    {{- end }}
    {{- range $name, $_ := $v.secrets.upstreamKeys }}
    - name: {{ $name }}
      valueFrom:
        secretKeyRef:
          name: {{ include "llm-gateway.upstreamSecret" $ }}
          key: {{ $name }}
    {{- end }}
  ports:
    {{- if $v.istio.enabled }}
    - name: grpc
      containerPort: 50051
    {{- end }}
    - name: metrics
      containerPort: 9464
  readinessProbe:
    {{- include "llm-gateway.probe" (dict "path" "/healthz" "port" "metrics" "timing" $v.probes.extproc.readiness) | nindent 4 }}
  livenessProbe:
    {{- include "llm-gateway.probe" (dict "path" "/healthz" "port" "metrics" "timing" $v.probes.extproc.liveness) | nindent 4 }}
  lifecycle:
    preStop:
      exec:
        {{- if $v.istio.enabled }}
        # The gateway's DNS refresh (5 s) drops this pod before it stops accepting streams.
        command: ["/bin/sleep", "20"]
        {{- else }}
        command: ["/bin/bash", "/etc/llm-gateway/scripts/drain.sh", "wait"]
        {{- end }}
  resources:
    {{- toYaml $v.resources.extproc | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
  volumeMounts:
    - name: policy
      mountPath: /etc/llm-gateway/policy
      readOnly: true
    {{- if not $v.istio.enabled }}
    - name: envoy-config
      mountPath: /etc/llm-gateway/envoy
      readOnly: true
    - name: extproc-socket
      mountPath: /var/run/extproc
    - name: scripts
      mountPath: /etc/llm-gateway/scripts
      readOnly: true
    {{- end }}
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/*
The pod's Envoy bootstrap: files/envoy.yaml, or with tracing.enabled files/envoy-tracing.yaml (the same,
rendered through deploy/render/tracing.ts) with its __TRACES_*__ tokens replaced by the checked values.
*/}}
{{- define "llm-gateway.envoyConfig" -}}
{{- if .Values.tracing.enabled -}}
{{- $t := .Values.tracing -}}
{{- include "llm-gateway.checkTracing" . -}}
{{- .Files.Get "files/envoy-tracing.yaml" | replace "__TRACES_COLLECTOR_HOST__" $t.collector.host | replace "__TRACES_COLLECTOR_PORT__" (toString (int $t.collector.port)) | replace "__TRACES_SAMPLING_PERCENT__" (toString (float64 $t.samplingPercent)) -}}
{{- else -}}
{{- .Files.Get "files/envoy.yaml" -}}
{{- end -}}
{{- end -}}

{{/* tracing.* as a bootstrap and an URL can take them: a DNS name or IPv4 address, a port, a percentage. */}}
{{- define "llm-gateway.checkTracing" -}}
{{- $t := .Values.tracing -}}
{{- if not (regexMatch "^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$" (toString $t.collector.host)) -}}
{{- fail "tracing.collector.host must be a DNS name or an IPv4 address" -}}
{{- end -}}
{{- if or (lt (int $t.collector.port) 1) (gt (int $t.collector.port) 65535) -}}
{{- fail "tracing.collector.port must be 1-65535" -}}
{{- end -}}
{{- if or (lt (float64 $t.samplingPercent) 0.0) (gt (float64 $t.samplingPercent) 100.0) -}}
{{- fail "tracing.samplingPercent must be 0-100" -}}
{{- end -}}
{{- end -}}

{{/* extproc's OTLP/HTTP endpoint: the collector Envoy exports to. */}}
{{- define "llm-gateway.tracesEndpoint" -}}
{{- printf "http://%s:%d/v1/traces" .Values.tracing.collector.host (int .Values.tracing.collector.port) -}}
{{- end -}}
