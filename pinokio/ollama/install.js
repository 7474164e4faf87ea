// Ollama's Linux release for this machine's architecture, unpacked into app/ (no root).
module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true },
        message: "mkdir -p app && curl -fL https://ollama.com/download/ollama-linux-{{arch === 'arm64' ? 'arm64' : 'amd64'}}.tgz | tar -xzf - -C app" } }
  ]
}
