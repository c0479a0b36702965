# syntax=docker/dockerfile:1.7
# The operator image: two static binaries on distroless, run as a non-root
# user: the operator, and the agent its database pods copy in.
# The build command is the Makefile's `make build` (test/dockerfile checks that
# they stay the same).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY apis/ apis/
COPY internal/pki/ internal/pki/
COPY render/ render/
COPY reconcile/ reconcile/
COPY cmd/ cmd/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/database-operator ./cmd/database-agent

FROM gcr.io/distroless/static-debian12:nonroot
# The agent runs in the database pods: their init container copies it out.
COPY --from=build /out/database-operator /out/database-agent /
USER 65532:65532
ENTRYPOINT ["/database-operator"]
