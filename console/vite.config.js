// The console's build: `npm ci && npm run build` writes app/static/console/ (committed; the suite
// rebuilds into a temporary folder, CONSOLE_OUT, and compares byte for byte). Output names carry
// content hashes only, so the same sources and lock file give the same files.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

const here = fileURLToPath(new URL('.', import.meta.url))

export default defineConfig({
  root: here,
  base: '/console/',
  plugins: [vue()],
  define: {
    __VUE_OPTIONS_API__: 'true',
    __VUE_PROD_DEVTOOLS__: 'false',
    __VUE_PROD_HYDRATION_MISMATCH_DETAILS__: 'false',
    __INTLIFY_PROD_DEVTOOLS__: 'false',
  },
  build: {
    outDir: process.env.CONSOLE_OUT || fileURLToPath(new URL('../app/static/console', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        // One vendor file (Vue, Element Plus, vue-i18n, vue-router) apart from the console's own code.
        manualChunks: (id) => (id.includes('node_modules') ? 'vendor' : undefined),
      },
    },
  },
  server: { proxy: { '/api': 'http://127.0.0.1:8000' } },
})
