/**
 * Calls to the server extension's routes (``/workbench/api/...``) through Jupyter's own
 * connection settings: its base URL, token and XSRF cookie, so the routes' authentication
 * and XSRF checks are Jupyter's.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { Json } from './model';

/** A refusal of the API: its status, one-line message, and the field or gates at fault. */
export class WorkbenchApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | null = null,
    readonly gates: string[] = []
  ) {
    super(message);
  }
}

export async function requestAPI<T>(
  path: string,
  init: { method?: string; body?: Json } = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench', 'api', path);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      url,
      {
        method: init.method ?? 'GET',
        body: init.body === undefined ? undefined : JSON.stringify(init.body)
      },
      settings
    );
  } catch (error) {
    throw new WorkbenchApiError(0, `the Jupyter server does not answer: ${String(error)}`);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: text.slice(0, 200) };
  }
  if (!response.ok) {
    throw new WorkbenchApiError(
      response.status,
      data?.message ?? response.statusText,
      data?.field ?? null,
      data?.gates ?? []
    );
  }
  return data as T;
}
