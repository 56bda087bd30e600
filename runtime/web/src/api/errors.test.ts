import { describe, expect, it } from 'vitest';
import { humanFrameError, humanRestError, frameMessages } from './errors';

describe('error messages', () => {
  it('has a message for every frame code', () => {
    for (const [code, msg] of Object.entries(frameMessages)) expect(msg, code).toMatch(/\S/);
  });
  it('unknown codes get a generic message with the code', () => {
    expect(humanFrameError('brand_new')).toBe('Something went wrong (brand_new).');
    expect(humanRestError('brand_new')).toBe('Something went wrong (brand_new).');
    expect(humanRestError('toString')).toBe('Something went wrong (toString).');
  });
  it('known codes', () => {
    expect(humanFrameError('blocked')).toBe('You cannot message this person.');
    expect(humanRestError('invalid_credentials')).toBe('Wrong username or password.');
  });
});
