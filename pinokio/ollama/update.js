// The newest Ollama release over the one in app/ (the models stay).
module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true },
        message: "mkdir -p app && curl -fL https://ollama.com/download/ollama-linux-{{arch === 'arm64' ? 'arm64' : 'amd64'}}.tgz | tar -xzf - -C app" } }
  ]
}
