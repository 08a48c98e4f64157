// Entry of bundle.js. Before anything else imports a shared package, every
// prebuilt extension listed in the page config is loaded and joins the shared
// scope, so that one copy of each shared package wins for the whole page.
// Kept free of static imports: the page config parser is repeated here.

function pageOption(name) {
  const el = document.getElementById('jupyter-config-data');
  const data = el ? JSON.parse(el.textContent || '{}') : {};
  return data[name] || '';
}

// Chunks and assets are served under the lab app's static URL.
__webpack_public_path__ = pageOption('fullStaticUrl') + '/';

function loadScript(url) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.onerror = reject;
    script.onload = resolve;
    script.async = true;
    script.src = url;
    document.head.appendChild(script);
  });
}

async function loadPrebuiltExtension(baseUrl, data) {
  await loadScript(`${baseUrl}/${data.name}/${data.load}`);
  await __webpack_init_sharing__('default');
  await window._JUPYTERLAB[data.name].init(__webpack_share_scopes__.default);
}

void (async () => {
  const baseUrl = pageOption('fullLabextensionsUrl');
  const results = await Promise.allSettled(
    pageOption('federated_extensions').map(data =>
      loadPrebuiltExtension(baseUrl, data)
    )
  );
  for (const result of results) {
    if (result.status === 'rejected') {
      console.error(result.reason);
    }
  }
  const { main } = await import('./main.js');
  // The page may have finished loading while the extensions did.
  if (document.readyState === 'complete') {
    void main();
  } else {
    window.addEventListener('load', () => void main(), { once: true });
  }
})();
