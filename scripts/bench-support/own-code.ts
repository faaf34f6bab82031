// Which profile frames are the repository's own code, for the profile summaries.

/** src/ run through tsx, or the broker bundle built from it (src/node/broker-bundle.ts); not dependencies. */
export function ownCode(url: string): boolean {
  return url.includes('/.cache/broker/') || (url.includes('/src/') && !url.includes('/node_modules/'));
}
