import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// `npm run dev` proxies /api to the backend the way nginx does in the container. The default
// is the port compose.override.yaml publishes the backend on (BACKEND_PORT); set API_URL to
// use another.
const apiURL = process.env.API_URL ?? 'http://localhost:8081'

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: { '/api': apiURL },
  },
  build: {
    // nginx serves everything under /assets/ as immutable: only content-hashed files go there.
    assetsDir: 'assets',
  },
  test: {
    environment: 'node',
  },
})
