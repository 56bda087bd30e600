# One image for every role: `parley operator|gateway|core|notification|migrate|...`.

# The web client, built once it exists (runtime/web). The stage is harmless without it.
FROM node:20-bookworm-slim AS web
WORKDIR /src
COPY runtime/ runtime/
RUN if [ -f runtime/web/package.json ]; then \
      cd runtime/web && npm ci --no-audit --no-fund && npm run build; \
    else mkdir -p runtime/web/dist; fi

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=web /src/runtime/web/dist runtime/web/dist
ARG VERSION=v0.0.0-dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/parleychat/parley/internal/version.Version=${VERSION}" \
      -o /out/parley . && \
    mkdir -p /out/tmp && chmod 1777 /out/tmp

# scratch: nothing but the binary, CA roots for external Kafka/PostgreSQL/S3 over TLS, and /tmp.
FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/parley /parley
COPY --from=build /out/tmp /tmp
USER 65532:65532
ENTRYPOINT ["/parley"]
CMD ["--help"]
