// ComfyUI into app/, its Python packages into the venv app/env; PyTorch for the machine's GPU.
module.exports = {
  run: [
    { method: "shell.run", params: { conda: { skip: true },
        message: "git clone https://github.com/comfyanonymous/ComfyUI app" } },
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "{{gpu === 'nvidia' ? 'pip install torch torchvision torchaudio --index-url https://download.pytorch.org/whl/cu121' : 'pip install torch torchvision torchaudio --index-url https://download.pytorch.org/whl/cpu'}}" } },
    { method: "shell.run", params: { conda: { skip: true }, venv: "env", path: "app",
        message: "pip install -r requirements.txt" } }
  ]
}
