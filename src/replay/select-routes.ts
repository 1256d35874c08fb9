import type { App } from '../app.js';
import { ConfigError } from '../errors.js';
import type { Route } from '../routes.js';

/** Which routes of the app a replay sends through: by sink name, by route, or both (their union). */
export interface RouteSelection {
  /** Every route to a sink of this name (`Sink.name`). */
  readonly sinks?: readonly string[];
  /**
   * Routes by their place in `routes` (`0`, `routes[0]`) or by their description as logs show it
   * (`Task.modify -> eventbridge`, see {@link Route.description}).
   */
  readonly routes?: readonly string[];
}

const INDEX = /^(?:routes\[)?(\d+)\]?$/;

/** `routes[0] (Task.modify -> eventbridge)`: how a route is named in answers. */
export const routeName = (route: Route, index: number): string => `routes[${index}] (${route.description})`;

/**
 * The routes a replay sends through. Nothing selected, or a name that matches nothing, is a
 * {@link ConfigError} whose message lists the names that exist.
 */
export const selectRoutes = (app: App, selection: RouteSelection): Route[] => {
  const sinkNames = [...new Set(app.routes.map((r) => r.sink.name))];
  const routeNames = app.routes.map(routeName);
  const sinks = selection.sinks ?? [];
  const routes = selection.routes ?? [];
  if (sinks.length === 0 && routes.length === 0) {
    throw new ConfigError('sink', `or route must name where the replay sends: sinks ${sinkNames.join(', ')}; routes ${routeNames.join(', ')}.`);
  }
  const chosen = new Set<number>();
  for (const name of sinks) {
    const found = app.routes.flatMap((r, i) => (r.sink.name === name ? [i] : []));
    if (found.length === 0) throw new ConfigError('sink', `\`${name}\` is not a sink of the app. Its sinks: ${sinkNames.join(', ')}.`);
    for (const i of found) chosen.add(i);
  }
  for (const name of routes) {
    const index = INDEX.exec(name.trim());
    const found =
      index !== null
        ? Number(index[1]) < app.routes.length
          ? [Number(index[1])]
          : []
        : app.routes.flatMap((r, i) => (r.description === name.trim() ? [i] : []));
    if (found.length === 0) throw new ConfigError('route', `\`${name}\` is not a route of the app. Its routes: ${routeNames.join(', ')}.`);
    for (const i of found) chosen.add(i);
  }
  return [...chosen].sort((a, b) => a - b).map((i) => app.routes[i] as Route);
};
