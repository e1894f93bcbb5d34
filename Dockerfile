# The service image for docker-compose.yml: the API and the egress proxy run
# from it with different commands. It needs a registry for the Node.js base
# image. The sandbox images are a different matter: build them on the host
# (`npm run setup`), whose engine the API drives through the Docker socket;
# their tags are hashes of images/, so this image and the host checkout must
# be the same revision.
FROM node:20-bookworm-slim

WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies included: tsx runs the TypeScript sources directly.
RUN npm ci --no-audit --no-fund && npm cache clean --force
COPY . .
# The administrator's console (/admin/ui/), bundled from console/ with the dev dependencies above.
RUN node scripts/build-console.mjs

ENV NODE_ENV=production
# Root, for the Docker socket (api) and for sockets in the directories the
# api creates (egress-proxy); compose drops every capability of the proxy.
CMD ["node", "--import", "tsx", "server/main.ts"]
