// `node --import ./register.mjs`: installs hooks.mjs (see there why).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
