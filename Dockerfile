# extproc image (also runs the demo model servers for docker-compose). Production runs Node 24 LTS.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto proto
COPY extproc extproc
COPY test test
COPY benchmarks benchmarks
RUN npx tsc -p .

FROM node:24-bookworm-slim
WORKDIR /app
# In a container extproc listens on TCP by default (its own Service, as in the Istio install); the pod and
# docker-compose set EXTPROC_LISTEN to their shared Unix socket instead.
ENV NODE_ENV=production EXTPROC_LISTEN=0.0.0.0:50051
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist dist
COPY proto proto
USER node
EXPOSE 50051 9464
CMD ["node", "dist/extproc/main.js"]
