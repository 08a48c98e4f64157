/**
 * Translation for cyscope's views. The plugin hands them JupyterLab's
 * bundle for cyscope's domain (ITranslator); without one (and in unit
 * tests) `plainTrans` formats the English text the same way, so the views
 * need no JupyterLab import.
 */
import type { TranslationBundle } from '@jupyterlab/translation';

/** The translation domain of cyscope's strings. */
export const TRANSLATION_DOMAIN = 'jupyterlab_cyscope';

/** What the views use of a translation bundle. */
export type Trans = Pick<TranslationBundle, '__' | '_n'>;

/** JupyterLab's placeholder rules: %1, %2... are the arguments; %% is %. */
function format(text: string, args: unknown[]): string {
  return text
    .replace(/%%/g, '%% ')
    .replace(/%(\d+)/g, (_, n: string) => String(args[Number(n) - 1]))
    .replace(/%% /g, '%');
}

export const plainTrans: Trans = {
  __: (msgid: string, ...args: unknown[]) => format(msgid, args),
  _n: (msgid: string, msgidPlural: string, n: number, ...args: unknown[]) =>
    format(n === 1 ? msgid : msgidPlural, [n, ...args])
};
