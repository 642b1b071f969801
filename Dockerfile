# syntax=docker/dockerfile:1
# The stockops host image: `stockops up` serving spin.toml's six components.
#   docker build -t stockops .
#   docker run --rm -p 127.0.0.1:3000:3000 --env-file .env -v stockops-data:/app/.spin stockops
#                                                       # embedded SQLite files (runtime-config/local.toml) in the volume
#   docker compose up -d                                                 # with Redis and a libSQL server
# Secrets come from the environment at run time (SPIN_VARIABLE_API_TOKEN, SPIN_VARIABLE_BACKUP_KEY): no .env
# is ever copied into an image layer. Other commands run the same way: `docker run … stockops backup --out …`.

# ---- build: the host (release) and the components (wasm32-wasip2), with the repository's own script ----
FROM rust:1.95-bookworm AS builder
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# The target directory and cargo's registry are build caches (BuildKit), so the artifacts are copied out
# in the same step: the host, and exactly the components spin.toml names (not the test-only trap
# component). setup.sh also writes a .env with fresh secrets: removed in this very layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    scripts/setup.sh \
    && rm -f .env \
    && mkdir -p /out/wasm \
    && cp target/release/stockops /out/stockops \
    && for f in $(sed -n 's/^source = "\(target\/wasm32-wasip2\/wasm\/[A-Za-z0-9_-]*\.wasm\)"$/\1/p' spin.toml); do \
           cp "$f" /out/wasm/; \
       done \
    && ls -l /out /out/wasm

# ---- run: a slim Debian (same glibc as the builder) and an unprivileged user ----
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 stockops \
    && useradd --system --uid 10001 --gid stockops --home-dir /app --no-create-home --shell /usr/sbin/nologin stockops
WORKDIR /app
COPY --from=builder /out/stockops /usr/local/bin/stockops
# The layout spin.toml expects, relative to itself: components under target/, the alert rules under config/.
COPY --from=builder /out/wasm/ /app/target/wasm32-wasip2/wasm/
COPY spin.toml /app/spin.toml
COPY config/ /app/config/
COPY runtime-config/ /app/runtime-config/
# The only writable place: embedded databases (runtime-config/local.toml puts them in ../.spin) and the
# compiled-component cache (.spin/aot-cache beside spin.toml, which makes restarts fast). Mount a volume.
RUN mkdir -p /app/.spin && chown stockops:stockops /app/.spin
VOLUME ["/app/.spin"]
USER stockops:stockops

# Inside a container the host must listen on every interface to be reachable through a published port
# (the host's own default is 127.0.0.1:3000); publish it on the host's loopback, e.g. -p 127.0.0.1:3000:3000.
# The manifest and runtime config are given as the environment variables every stockops command reads
# (`up`, `backup`, `restore`, `ingest`…), so `docker run IMAGE backup --out /app/.spin/backups` needs no
# more; another runtime config: -e STOCKOPS_RUNTIME_CONFIG=… (docker-compose.yml mounts its own).
ENV STOCKOPS_LISTEN=0.0.0.0:3000 \
    STOCKOPS_MANIFEST=/app/spin.toml \
    STOCKOPS_RUNTIME_CONFIG=/app/runtime-config/local.toml
EXPOSE 3000
# /health answers 200 when ok or degraded and 503 when failing (database or schema): curl -f fails on 503.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${STOCKOPS_LISTEN##*:}/health" || exit 1
# SIGTERM (docker stop) drains requests in flight for up to 10 s: give the container more than that to stop
# (docker stop -t 30, or stop_grace_period in compose).
STOPSIGNAL SIGTERM
# = stockops up --manifest /app/spin.toml --runtime-config $STOCKOPS_RUNTIME_CONFIG --listen $STOCKOPS_LISTEN
ENTRYPOINT ["stockops"]
CMD ["up"]
